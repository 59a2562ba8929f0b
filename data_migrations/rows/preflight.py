"""The rows step's preflight check (data_migrations/run/preflight.py runs it): the source
is a readable, intact SQLite file.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from data_migrations.rows.source import open_source
from data_migrations.run.report import Progress
from data_migrations.run.sql import quote
from settings import ConfigError, Settings

log = logging.getLogger("cutover.preflight")

# SQLite virtual machine steps between two looks at the clock during the integrity check.
SQLITE_STEPS_PER_TICK = 100_000


def source_intact(cutover: Settings) -> list[str]:
    """SOURCE_DATABASE_URL names a readable SQLite file that passes ``PRAGMA quick_check``."""
    try:
        path = cutover.source_database_path()
    except ConfigError as error:
        return [str(error)]
    assert path is not None  # run() checks the source is set
    named = f"SOURCE_DATABASE_URL names {path}, which"
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError as error:
        return [f"{named} cannot be read ({error.strerror or error})"]
    try:
        findings = quick_check(path)
    except sqlite3.DatabaseError as error:
        return [f"{named} is not an intact SQLite file ({error})"]
    if findings != ["ok"]:
        shown = "; ".join(findings[:3]) + (f"; ... {len(findings) - 3} more" if
                                           len(findings) > 3 else "")
        return [f"{named} is not an intact SQLite file (PRAGMA quick_check: {shown})"]
    return []


def quick_check(path: Path) -> list[str]:
    """What ``PRAGMA quick_check`` says of each table and its indexes (``["ok"]`` when
    the file is intact), table by table so that a large file shows progress."""
    with open_source(path) as source:
        tables = [name for (name,) in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        progress = Progress(log, f"checking {path.name}", len(tables), "tables")
        # A long table still prints a line every few seconds.
        source.set_progress_handler(lambda: progress.advance(0), SQLITE_STEPS_PER_TICK)
        findings = []
        for table in tables:
            findings += [row[0] for row in source.execute(f"PRAGMA quick_check({quote(table)})")
                         if row[0] != "ok"]
            progress.advance()
    return findings or ["ok"]
