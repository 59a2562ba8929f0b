"""One cutover run at a time against a target.

Every command that changes the target or reads it for the cutover (upgrade, downgrade,
the dry-run plan, verify) first takes a PostgreSQL session-level advisory lock on a key
fixed for this project. Session level, because the migrations commit one transaction per
revision and the lock must outlive each of them; and because PostgreSQL releases it when
the session ends, a killed run blocks the next one only until the server notices that its
client is gone.

A second run does not wait: it stops with one line naming the run that holds the lock,
from ``pg_locks`` and ``pg_stat_activity``. The holder is recognisable there because each
run names its session (``application_name``) after its process and its command.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from data_migrations.run.errors import DataMigrationError

# A signed 64-bit key derived from the project's name: the same for every run and every
# version of this tool, and unlikely to collide with another application's advisory locks.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"meeting-agent cutover").digest()[:8], "big",
                          signed=True)
APPLICATION_NAME_LIMIT = 63  # PostgreSQL truncates application_name to NAMEDATALEN - 1


class RunLockHeld(DataMigrationError):
    """Another run holds the target's cutover lock."""


def session_name(activity: str) -> str:
    """What this run calls its session: its process, host and command."""
    host = socket.gethostname()[:20]
    return f"cutover pid {os.getpid()}@{host}: {activity}"[:APPLICATION_NAME_LIMIT]


def take(connection: sa.Connection, activity: str) -> None:
    """Take the lock for this session, or raise ``RunLockHeld`` naming its holder.

    Leaves the connection outside a transaction when it found it so, so that Alembic can
    begin its own per-revision transactions afterwards.
    """
    if connection.dialect.name != "postgresql":
        return
    outside_transaction = not connection.in_transaction()
    connection.execute(sa.text("SELECT set_config('application_name', :name, false)"),
                       {"name": session_name(activity)})
    taken = connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"),
                               {"key": LOCK_KEY}).scalar_one()
    holder = None if taken else _holder(connection)
    if outside_transaction:
        connection.commit()
    if not taken:
        raise RunLockHeld(_held_message(holder))


def release(connection: sa.Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    outside_transaction = not connection.in_transaction()
    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
    if outside_transaction:
        connection.commit()


@contextmanager
def holding(connection: sa.Connection, activity: str) -> Iterator[None]:
    """The lock for the duration of a run on ``connection``.

    Released when the run succeeds, so that a caller that lent its own connection can
    start another run on it. A failed run's connection is closed by its owner (or is
    already dead), which releases the lock; an unlock on a connection whose transaction
    failed would only hide the failure.
    """
    take(connection, activity)
    yield
    release(connection)


def _holder(connection: sa.Connection) -> dict[str, Any] | None:
    # A bigint advisory key shows in pg_locks as classid (high half), objid (low half)
    # and objsubid 1.
    row = connection.execute(sa.text(
        "SELECT a.pid, a.client_addr, a.client_port, a.backend_start, a.application_name, "
        "a.state, a.usename "
        "FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid::bigint = :high AND l.objid::bigint = :low AND l.objsubid = 1"),
        {"high": (LOCK_KEY >> 32) & 0xFFFFFFFF, "low": LOCK_KEY & 0xFFFFFFFF}).first()
    return None if row is None else dict(row._mapping)


def _held_message(holder: dict[str, Any] | None) -> str:
    if holder is None:  # it ended between our attempt and our look
        return ("another cutover run held this database's lock a moment ago and has just "
                "ended: run the command again")
    address = (f"{holder['client_addr']}:{holder['client_port']}"
               if holder["client_addr"] is not None else "a local socket")
    started = (holder["backend_start"].strftime("%Y-%m-%d %H:%M:%S %Z").strip()
               if holder["backend_start"] is not None else "an unknown time")
    what = holder["application_name"] or "an unnamed session"
    return (f"another cutover run is using this database: server session {holder['pid']} "
            f"({what}), connected from {address} as {holder['usename']} since {started}, "
            f"state {holder['state'] or 'unknown'}. Wait for it to finish. If that run was "
            f"killed, PostgreSQL ends its session once it notices: try again in a few "
            f"seconds, or, if its process is surely gone, "
            f"SELECT pg_terminate_backend({holder['pid']}) and run again")


def command_name(cmd_opts: object) -> str | None:
    """The alembic command of a command-line run (``upgrade``, ``current``, ...), else None."""
    command = getattr(cmd_opts, "cmd", None)
    return command[0].__name__ if command else None


def describe(cmd_opts: object, dry_run: bool) -> str:
    """The command of this run, for the session name: ``upgrade head``, ``plan``, ..."""
    revision = getattr(cmd_opts, "revision", None) or ""
    if dry_run:
        return f"plan (dry run to {revision or 'head'})"
    return f"{command_name(cmd_opts) or 'alembic from Python'} {revision}".strip()
