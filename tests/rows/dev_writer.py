"""The app's forgotten worker: a process of its own writing to the dev file, as the app does.

    python -m tests.rows.dev_writer DEV_FILE UPLOADS_DIR during|after|again|last|bad|orphan
"""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from tests.dev_data import REQUIRED

# The rows each phase writes, above the generated dev file's ids.
LATE_USER = 100
LATE_TASK = "7e57ab1e-0000-4000-8000-000000000001"
LATE_AUDIO = "uploads/audio/late recording #1.wav"
LATE_MINUTES = "uploads/exports/late minutes 纪要.md"
DURING_LOGS = range(1000, 1005)
AFTER_LOGS = range(2000, 2002)
AGAIN_LOGS = range(3000, 3003)
LAST_LOGS = range(4000, 4003)
BAD_USER = 200
CHANGED_NAME = "changed during the cutover"
CHANGED_TITLE = "changed after the cutover"


def insert(connection: sqlite3.Connection, table: str, **values: object) -> None:
    row = {**REQUIRED[table], **values}
    connection.execute(f"INSERT INTO {table} ({', '.join(row)}) "
                       f"VALUES ({', '.join('?' for _ in row)})", list(row.values()))


def during(connection: sqlite3.Connection, uploads: Path) -> None:
    """A new user with a task whose recording is a new file, new logs, a changed user."""
    (uploads / LATE_AUDIO.removeprefix("uploads/")).write_bytes(b"RIFF late recording")
    insert(connection, "users", id=LATE_USER, username="late-user")
    insert(connection, "tasks", id=LATE_TASK, user_id=LATE_USER, audio_path=LATE_AUDIO)
    for key in DURING_LOGS:
        insert(connection, "audit_logs", id=key, user_id=LATE_USER, task_id=LATE_TASK)
    connection.execute("UPDATE users SET display_name = ? WHERE id = 1", (CHANGED_NAME,))


def after(connection: sqlite3.Connection, uploads: Path) -> None:
    """More logs, minutes in a new file, and a task the cutover copied changed."""
    (uploads / LATE_MINUTES.removeprefix("uploads/")).write_text("# late minutes\n")
    insert(connection, "generated_artifacts", id=500, task_id=LATE_TASK, file_path=LATE_MINUTES)
    for key in AFTER_LOGS:
        insert(connection, "audit_logs", id=key, user_id=1)
    connection.execute("UPDATE tasks SET title = ? WHERE id = (SELECT min(id) FROM tasks "
                       "WHERE id <> ?)", (CHANGED_TITLE, LATE_TASK))


def again(connection: sqlite3.Connection, uploads: Path) -> None:
    """Logs of a user the cutover copied."""
    for key in AGAIN_LOGS:
        insert(connection, "audit_logs", id=key, user_id=1)


def last(connection: sqlite3.Connection, uploads: Path) -> None:
    """Still running: more of them."""
    for key in LAST_LOGS:
        insert(connection, "audit_logs", id=key, user_id=1)


def bad(connection: sqlite3.Connection, uploads: Path) -> None:
    """A user whose email PostgreSQL refuses (longer than its 255 characters)."""
    insert(connection, "users", id=BAD_USER, username="bad-user", email="x" * 300)


def orphan(connection: sqlite3.Connection, uploads: Path) -> None:
    """A log of the user the cutover rejected."""
    insert(connection, "audit_logs", id=5000, user_id=BAD_USER)


PHASES = {"during": during, "after": after, "again": again, "last": last, "bad": bad,
          "orphan": orphan}


def main(dev_file: str, uploads: str, phase: str) -> None:
    with closing(sqlite3.connect(dev_file)) as connection, connection:
        PHASES[phase](connection, Path(uploads))


if __name__ == "__main__":
    main(*sys.argv[1:])
