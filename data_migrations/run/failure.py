"""How an expected failure ends a run: one ``FAILED:`` line and an exit code, no traceback.

Expected failures are the settings' (``ConfigError``), the storage's (``StorageError``) and
the data steps' (``DataMigrationError``: a step's findings, the preflight, the run lock, a
lost connection); their message already says what is wrong and where. Anything else is a
bug and keeps its traceback.

- A command (verify, presync, adopt-dev, adopt-target) runs its body through
  ``exit_code``: the line goes to the log (stderr) and the command exits 2.
- An Alembic run (alembic/env.py) runs inside ``as_alembic_failure``: the message becomes
  Alembic's ``CommandError``, which its command line prints as ``FAILED: <message>`` with a
  non-zero exit, and which a run driven from Python receives as an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic.util import CommandError

from data_migrations.run.errors import DataMigrationError
from settings import ConfigError, mask_url
from storage import StorageError

log = logging.getLogger("cutover.run")

EXPECTED: tuple[type[Exception], ...] = (ConfigError, StorageError, DataMigrationError)
FAILED_EXIT = 2


def driver_message(exc: sa.exc.DBAPIError) -> str:
    """The first line of what the database driver said: psycopg2 goes on with DETAIL and
    HINT lines that do not fit a one-line failure."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)


def connect(engine: sa.Engine) -> sa.Connection:
    """``engine.connect()``; a refused connection is a ``ConfigError`` naming the URL with
    its password masked."""
    try:
        return engine.connect()
    except sa.exc.OperationalError as exc:
        raise ConfigError(
            f"cannot connect to {mask_url(engine.url)}: {driver_message(exc)}") from None


def exit_code(body: Callable[[], int], prefix: str = "",
              also: tuple[type[Exception], ...] = ()) -> int:
    """``body()``'s exit code; an expected failure (or one of ``also``) is logged as one
    ``FAILED: <prefix><message>`` line and exits 2, and so is a database that cannot be
    reached."""
    try:
        return body()
    except (*EXPECTED, *also) as exc:
        log.error(f"FAILED: {prefix}{exc}")
    except sa.exc.OperationalError as exc:
        log.error(f"FAILED: {prefix}cannot connect: {driver_message(exc)}")
    return FAILED_EXIT


@contextmanager
def as_alembic_failure() -> Iterator[None]:
    """An expected failure inside the block becomes Alembic's ``CommandError``."""
    try:
        yield
    except EXPECTED as exc:
        raise CommandError(str(exc)) from None
