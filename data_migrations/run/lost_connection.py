"""A connection to PostgreSQL lost in the middle of a run, told in one line.

The server restarting, a ``pg_terminate_backend`` or a network cut ends the session in
the middle of a step. Each step is one transaction, so nothing of it was committed and
running the same command again resumes at that step: that is what the operator needs to
read, not the driver's traceback. The error can come through SQLAlchemy (a statement) or
straight from the driver (the row copy streams ``COPY`` on the raw connection), so both
are recognised with the dialect's own test for a disconnect.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import sqlalchemy as sa

from data_migrations.run.errors import DataMigrationError


class ConnectionLost(DataMigrationError):
    """The session ended under a running step."""


@contextmanager
def translated(connection: sa.Connection, during: str | None = None,
               read_only: bool = False) -> Iterator[None]:
    """Turn a lost connection inside the block into ``ConnectionLost``; ``during`` names
    the command when it is one step (``verify``), else the message names the revision. A
    ``read_only`` command (verify) writes nothing, so it has nothing to resume either."""
    try:
        yield
    except Exception as exc:
        if not is_lost_connection(exc, connection.dialect):
            raise
        # Discard the dead connection now: returning it to the pool would try a rollback
        # on it and log that failure with a traceback.
        connection.invalidate()
        outcome = ("it changes nothing; run it again once PostgreSQL answers" if read_only
                   else "nothing of this step was committed; run the same command again "
                        "to resume")
        raise ConnectionLost(f"the connection to PostgreSQL was lost during "
                             f"{during or failed_step(exc)}; {outcome}") from None


@contextmanager
def driver_dumps_silenced() -> Iterator[None]:
    """Around psycopg2's ``COPY``: when the server ends the session under it (a restart,
    ``pg_terminate_backend``), psycopg2 prints the pending error through ``sys.excepthook``
    (``AdminShutdown`` ... ``SystemError: <function decode ...>``) before raising its own.
    The raised one is the run's failure, told in one line; the print would precede it as
    a dump."""
    previous = sys.excepthook
    sys.excepthook = _unprinted
    try:
        yield
    finally:
        sys.excepthook = previous


def _unprinted(*_: object) -> None:
    return None


def is_lost_connection(exc: BaseException, dialect: sa.Dialect) -> bool:
    """Whether ``exc``, or an error it was raised in handling of, is a disconnect."""
    for error in _chain(exc):
        if isinstance(error, sa.exc.DBAPIError):
            if error.connection_invalidated or dialect.is_disconnect(error.orig, None, None):
                return True
        elif dialect.is_disconnect(error, None, None):
            return True
    return False


def failed_step(exc: BaseException) -> str:
    """The revision whose code was running, e.g. ``0002 copy_sqlite_rows``."""
    for error in _chain(exc):
        step = running_step(frame for frame, _ in traceback.walk_tb(error.__traceback__))
        if step is not None:
            return step
    return "the run"


def running_step(frames: Iterable[FrameType]) -> str | None:
    """The innermost revision's ``upgrade`` or ``downgrade`` among ``frames`` (outermost
    first), named as ``0002 copy_sqlite_rows``, or None."""
    steps = [frame for frame in frames if frame.f_code.co_name in ("upgrade", "downgrade")
             and "down_revision" in frame.f_globals]
    if not steps:
        return None
    frame = steps[-1]
    revision, _, name = Path(frame.f_code.co_filename).stem.partition("_")
    direction = "" if frame.f_code.co_name == "upgrade" else f" ({frame.f_code.co_name})"
    return f"{revision} {name}{direction}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
