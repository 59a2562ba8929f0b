"""The dev file's snapshots: a second one taken in the same second never replaces the first
(the copy record names the first, and make verify compares with it)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from data_migrations.rows.source import back_up


def test_a_snapshot_in_the_same_second_as_another_gets_a_name_of_its_own(
        tmp_path: Path) -> None:
    dev_file = tmp_path / "meeting_agent.db"
    with closing(sqlite3.connect(dev_file)) as connection, connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO users (name) VALUES ('周会')")
    backups = tmp_path / "work" / "backups"
    backups.mkdir(parents=True)
    now = datetime.now(UTC)
    # Snapshots already there for this second and the next two: whichever second the
    # backup below falls in, its name is taken.
    taken = [backups / f"meeting_agent-{(now + timedelta(seconds=s)):%Y%m%dT%H%M%SZ}.db"
             for s in range(3)]
    for path in taken:
        path.write_bytes(b"the cutover's snapshot")

    snapshot = back_up(dev_file, tmp_path / "work")

    assert snapshot not in taken
    assert [path.read_bytes() for path in taken] == [b"the cutover's snapshot"] * 3
    with closing(sqlite3.connect(snapshot)) as connection:
        assert connection.execute("SELECT name FROM users").fetchall() == [("周会",)]
