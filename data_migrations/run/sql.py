"""SQL text the steps write by hand (COPY, set-based checks, the rewrite's statements), and
the dev SQLite file opened read-only, which the row copy, the path rewrite and their
preflight checks all read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def quote(name: str) -> str:
    """A table or column name as a quoted identifier: the same rule in SQLite and
    PostgreSQL, and safe for any name the app's schema holds."""
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def open_source(path: Path) -> Iterator[sqlite3.Connection]:
    """The dev database opened read-only, so the cutover can never change it."""
    connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        yield connection
    finally:
        connection.close()


def column_names(source: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in source.execute(f"PRAGMA table_info({quote(table)})")]
