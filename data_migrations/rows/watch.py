"""The dev file watched from the moment its snapshot is taken to the end of the run.

The cutover copies a consistent snapshot of the dev file (source.back_up); a process
still writing to the file meanwhile (a forgotten worker) leaves its rows behind, and going
live would lose them. So a read-only connection to the dev file is held open from just
before the snapshot: SQLite's ``PRAGMA data_version`` on it changes once any other
connection commits to the file. At the end of the run an unchanged version proves that
nothing was written; a changed one has the snapshot compared with the file
(difference.py), which says exactly which rows are new or changed.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from data_migrations.rows import source as src
from data_migrations.rows.difference import TableDifference, counts_text, differences, left_behind

log = logging.getLogger("cutover.rows")

LEAVE_SETTING = "LEAVE_DEV_ROWS=true (-x leave_dev_rows=true)"


@dataclass
class DevFileWatch:
    dev_file: Path
    snapshot: Path
    connection: sqlite3.Connection
    version: int

    def changed(self) -> bool:
        return data_version(self.connection) != self.version


_watched: DevFileWatch | None = None


def data_version(connection: sqlite3.Connection) -> int:
    return connection.execute("PRAGMA data_version").fetchone()[0]


def watched_snapshot(path: Path, work_dir: Path) -> Path:
    """``source.back_up(path, work_dir)``, with the dev file watched from just before it:
    a write during the backup counts as a change too, which the comparison then settles."""
    global _watched
    _forget()
    connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    version = data_version(connection)
    snapshot = src.back_up(path, work_dir)
    _watched = DevFileWatch(path, snapshot, connection, version)
    return snapshot


def _forget() -> None:
    global _watched
    if _watched is not None:
        _watched.connection.close()
    _watched = None


def since_snapshot() -> list[TableDifference] | None:
    """What the dev file holds beyond the snapshot taken in this run (an empty list when it
    was not written to since), and the watch ends; None when this run took no snapshot."""
    watch = _watched
    if watch is None:
        return None
    try:
        changed = watch.changed()
    finally:
        _forget()
    return differences(watch.dev_file, watch.snapshot) if changed else []


def since_record(dev_file: Path, snapshot: Path) -> list[TableDifference] | None:
    """What the dev file holds beyond a snapshot an earlier run took, compared whole (no
    watch saw it); None when either file is gone."""
    if not (dev_file.is_file() and snapshot.is_file()):
        return None
    return differences(dev_file, snapshot)


def tell(found: list[TableDifference], dev_file: str, leave: bool, env_name: str | None,
         not_ready_exit: int) -> int:
    """The run's last line when the dev file changed after the snapshot, and the exit
    code: ``not_ready_exit`` while rows are left behind, unless ``leave`` says that is
    meant."""
    deleted = [d for d in found if d.deleted]
    if deleted:
        log.info("Rows deleted from the dev file after the snapshot stay in the target (a "
                 "catch-up never deletes): " + ", ".join(f"{d.table} {d.deleted:,}"
                                                          for d in deleted))
    behind = left_behind(found)
    if not behind:
        return 0
    rows = sum(d.left_behind for d in behind)
    what = (f"the dev file {dev_file} changed after the cutover's snapshot: {rows:,} rows are "
            f"not in the target ({counts_text(behind)})")
    if leave:
        log.info(f"Left in the dev file on purpose ({LEAVE_SETTING}): {what}.")
        return 0
    command = "make catch-up" + (f" ENV={env_name}" if env_name else "")
    log.error(f"NOT READY TO GO LIVE: {what}. Stop the app's API and worker (every process "
              f"writing to the dev file), then run `{command}`; exit {not_ready_exit}")
    return not_ready_exit
