"""Ctrl-C and SIGTERM: how a signal becomes an exception that unwinds the run.

A signal raises ``Interrupted`` in the main thread, wherever it was, so the run unwinds
as after any failure: the revision's transaction rolls back, the workers stop, the locks
go with the session and the process. On the way the interrupt may come back as another
exception: psycopg2 turns an exception in ``COPY``'s read callback into
``QueryCanceled``. So the signal is remembered when it arrives (``Interrupt``), with the
step it found running, and whatever the run ends with after it is the interrupt:
data_migrations/run/failure.py turns it into its one line and exit code (128 + the
signal's number: 130 for SIGINT, 143 for SIGTERM). A second signal while the run unwinds
ends the process at once, as a kill would.

Only signals nobody else handles are taken over (Python's own SIGINT handler, SIGTERM's
default), so a program that drives Alembic and handles its signals keeps them. The row
copy's worker processes leave both signals to the run (``ignored_in_workers``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

from data_migrations.run import lost_connection

SIGNALS = (signal.SIGINT, signal.SIGTERM)
UNHANDLED = (signal.default_int_handler, signal.SIG_DFL)

# Names the step that was running from the main thread's frame when a signal arrived.
StepNamer = Callable[[FrameType | None], str]


class Interrupted(KeyboardInterrupt):
    """A signal arrived; a KeyboardInterrupt, so that libraries treat it as Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupt:
    """The first signal of a run, and the step it found running."""

    def __init__(self, step: StepNamer, second: Callable[[Interrupt], NoReturn]) -> None:
        self.step = step
        self.second = second  # a second signal: ends the process at once
        self.signum: int | None = None
        self.during = ""

    def arrived(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self.second(self)
        self.signum = signum
        self.during = self.step(frame)
        raise Interrupted(signum)

    @property
    def exit_code(self) -> int:
        assert self.signum is not None
        return 128 + self.signum


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


@contextmanager
def taken_over(step: StepNamer, second: Callable[[Interrupt], NoReturn]
               ) -> Iterator[Interrupt]:
    """Around a whole run: SIGINT and SIGTERM raise ``Interrupted`` (the ``Interrupt``
    yielded says which, and during what); ``second`` is called on a second one."""
    interrupt = Interrupt(step, second)
    previous = _take_over(interrupt.arrived)
    try:
        yield interrupt
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
