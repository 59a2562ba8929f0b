"""An app that keeps writing while a migration runs: threads, each on its own connection,
that insert and update rows in short transactions and record when each one committed, how
long it took, and any error."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa

Statement = Callable[[sa.Connection, random.Random], None]


@dataclass
class Writers:
    """What the writer threads did: commit moments and durations (monotonic), errors."""

    commits: list[tuple[float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def committed_between(self, start: float, end: float) -> int:
        return sum(1 for moment, _ in self.commits if start < moment < end)


@contextmanager
def writing(engine: sa.Engine, write: Statement, threads: int = 2,
            pause: float = 0.005) -> Iterator[Writers]:
    """``write`` in a transaction of its own, again and again on each thread, until the
    block ends; at least one commit per thread has happened before the block starts."""
    writers = Writers()
    stop = threading.Event()
    started = threading.Barrier(threads + 1)

    def run(seed: int) -> None:
        chance = random.Random(seed)
        first = True
        with engine.connect() as connection:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    with connection.begin():
                        write(connection, chance)
                    writers.commits.append((time.monotonic(), time.monotonic() - began))
                except Exception as exc:  # the test asserts there were none
                    writers.errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
                if first:
                    first = False
                    started.wait()
                time.sleep(pause)

    workers = [threading.Thread(target=run, args=(seed,)) for seed in range(threads)]
    for worker in workers:
        worker.start()
    started.wait()
    try:
        yield writers
    finally:
        stop.set()
        for worker in workers:
            worker.join()
