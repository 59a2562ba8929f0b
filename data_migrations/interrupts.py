"""Ctrl-C and SIGTERM, told in one line: how a signal becomes an interrupt, and how an
interrupt ends a command (the alembic steps through alembic/env.py, the presync, verify).

A signal raises ``Interrupted`` in the main thread, wherever it was, so the command
unwinds as after any failure: the revision's transaction rolls back, the workers stop,
the locks go with the session and the process. On the way the interrupt may come back
as another exception: psycopg2 turns an exception in ``COPY``'s read callback into
``QueryCanceled``. So the signal is remembered when it arrives, and whatever the command
ends with after it is the interrupt: one line, then exit 128 + the signal's number (130
for SIGINT, 143 for SIGTERM). A second signal while it unwinds ends the process at once,
as a kill would, with the same line.

Only signals nobody else handles are taken over (Python's own SIGINT handler, SIGTERM's
default), so a program that drives Alembic and handles its signals keeps them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from data_migrations.run import lost_connection

SIGNALS = (signal.SIGINT, signal.SIGTERM)
UNHANDLED = (signal.default_int_handler, signal.SIG_DFL)

log = logging.getLogger("cutover.run")

# Names the step that was running from the main thread's frame when a signal arrived.
StepNamer = Callable[[FrameType | None], str]


class Interrupted(KeyboardInterrupt):
    """A signal arrived; a KeyboardInterrupt, so that libraries treat it as Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Interrupt:
    """The first signal of a command and the line it ends in."""

    def __init__(self, step: StepNamer, outcome: str) -> None:
        self.step = step
        self.outcome = outcome
        self.signum: int | None = None
        self.line = ""

    def arrived(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # a second signal: stop now, as a kill would
            log.error(self.line)
            logging.shutdown()
            os._exit(exit_code(self.signum))
        self.signum = signum
        self.line = (f"interrupted during {self.step(frame)}; {self.outcome}; "
                     "run the same command again")
        raise Interrupted(signum)


def revision_or(command: str) -> StepNamer:
    """Name the revision that was running, else the command (e.g. during the preflight)."""
    def step(frame: FrameType | None) -> str:
        frames = []
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
        return lost_connection.running_step(reversed(frames)) or command
    return step


def named(what: str) -> StepNamer:
    """A command that is one step: ``the presync``, ``verify``."""
    return lambda _: what


def exit_code(signum: int) -> int:
    return 128 + signum


@contextmanager
def interruptible(step: StepNamer, outcome: str) -> Iterator[None]:
    """Around a whole command: a SIGINT or SIGTERM ends it with one line and its exit code
    (``SystemExit``), whatever exception it unwound as. ``outcome`` says what the
    interrupt leaves, e.g. "nothing of this step was committed"."""
    interrupt = _Interrupt(step, outcome)
    previous = _take_over(interrupt.arrived)
    try:
        yield
    except BaseException:
        if interrupt.signum is None:
            raise
        log.error(interrupt.line)
        raise SystemExit(exit_code(interrupt.signum)) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _take_over(handler: Callable[[int, FrameType | None], None]
               ) -> dict[int, Callable | int | None]:
    """Install ``handler`` for the signals nobody else handles; returns what it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread can handle signals
    previous = {}
    for signum in SIGNALS:
        current = signal.getsignal(signum)
        if current in UNHANDLED:
            previous[signum] = signal.signal(signum, handler)
    return previous


@contextmanager
def blocked_while_starting_workers() -> Iterator[None]:
    """Around starting worker processes: SIGINT and SIGTERM wait until the block ends. A
    process started inside is born with them blocked (the mask is inherited through fork
    and exec), so one sent to the whole group cannot kill it before it ignores them
    (``ignored_in_workers``): a worker dead that way breaks the pool, whose manager thread
    then prints a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def ignored_in_workers() -> None:
    """In a worker process: leave SIGINT and SIGTERM to the command's process, which stops
    its workers itself. Ctrl-C reaches every process of the terminal's group."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
