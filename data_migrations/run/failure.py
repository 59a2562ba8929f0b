"""How a run ends when it cannot go on: one line and an exit code, no traceback.

Two kinds of ending are expected. A failure: the settings' (``ConfigError``), the
storage's (``StorageError``) or the data steps' (``DataMigrationError``: a step's findings,
the preflight, the run lock, a lost connection), whose message already says what is wrong
and where. And an interrupt: Ctrl-C or SIGTERM (data_migrations/run/interrupts.py turns
the signal into an exception), told as ``interrupted during <step>; <what it leaves>; run
the same command again`` with exit 128 + the signal's number. Anything else is a bug and
keeps its traceback. This module is the one place where either becomes its line:

- A command (verify, presync, adopt-dev, adopt-target, make sql) runs its body through
  ``command``: a failure is ``FAILED: <message>`` on stderr and exit 2 (make sql: 1).
- An Alembic run (alembic/env.py) runs inside ``alembic_run``: a failure becomes Alembic's
  ``CommandError``, which its command line prints as ``FAILED: <message>`` with a non-zero
  exit, and which a run driven from Python receives as an exception.
- A cutover that finished while rows of the dev file stayed behind exits
  ``NOT_READY_EXIT`` after its last line says so (data_migrations/rows/watch.py).
Once a signal arrived, whatever the run ends with is the interrupt's line and exit code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import sqlalchemy as sa
from alembic.util import CommandError

from data_migrations.run import interrupts
from data_migrations.run.errors import DataMigrationError
from settings import ConfigError, mask_url
from storage import StorageError

log = logging.getLogger("cutover.run")

EXPECTED: tuple[type[Exception], ...] = (ConfigError, StorageError, DataMigrationError)
FAILED_EXIT = 2
# Not a failure: the cutover finished and is consistent, but rows written to the dev file
# after its snapshot are not in the target (make catch-up copies them), so going live
# would lose them.
NOT_READY_EXIT = 3


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
              also: tuple[type[Exception], ...] = (), failed: int = FAILED_EXIT) -> int:
    """``body()``'s exit code; an expected failure (or one of ``also``) is logged as one
    ``FAILED: <prefix><message>`` line and exits ``failed``, and so is a database that
    cannot be reached."""
    try:
        return body()
    except (*EXPECTED, *also) as exc:
        log.error(f"FAILED: {prefix}{exc}")
    except sa.exc.OperationalError as exc:
        log.error(f"FAILED: {prefix}cannot connect: {driver_message(exc)}")
    return failed


def command(step: str, outcome: str, body: Callable[[], int], prefix: str = "",
            also: tuple[type[Exception], ...] = (), failed: int = FAILED_EXIT) -> int:
    """A command's whole run: ``exit_code(body, ...)``, and an interrupt is told as
    ``interrupted during <step>; <outcome>; ...`` (``outcome``: what it leaves behind),
    also when it comes back as an expected failure."""
    def told() -> int:
        with interrupt_told(interrupts.named(step), outcome):
            return body()
    return exit_code(told, prefix, also, failed)


@contextmanager
def alembic_run(command_line: str) -> Iterator[None]:
    """An Alembic run's whole body: a failure becomes a ``CommandError``; an interrupt is
    told naming the revision that was running, else ``command_line``."""
    with interrupt_told(interrupts.revision_or(command_line),
                        "nothing of this step was committed"), as_alembic_failure():
        yield


@contextmanager
def interrupt_told(step: interrupts.StepNamer, outcome: str) -> Iterator[None]:
    """Once SIGINT or SIGTERM arrived, whatever the block ends with is the interrupt: its
    line, and ``SystemExit`` with its exit code. A second signal ends the process at once,
    as a kill would, with the same line."""
    def at_once(interrupt: interrupts.Interrupt) -> NoReturn:
        log.error(interrupted_line(interrupt, outcome))
        logging.shutdown()
        os._exit(interrupt.exit_code)

    with interrupts.taken_over(step, at_once) as interrupt:
        try:
            yield
        except BaseException:
            if interrupt.signum is None:
                raise
            log.error(interrupted_line(interrupt, outcome))
            raise SystemExit(interrupt.exit_code) from None


def interrupted_line(interrupt: interrupts.Interrupt, outcome: str) -> str:
    return f"interrupted during {interrupt.during}; {outcome}; run the same command again"


@contextmanager
def as_alembic_failure() -> Iterator[None]:
    """An expected failure inside the block becomes Alembic's ``CommandError``."""
    try:
        yield
    except EXPECTED as exc:
        raise CommandError(str(exc)) from None
