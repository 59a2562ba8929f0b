"""One function over many items on worker threads, each result handed back as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from threading import Event, Thread
from typing import Generic, TypeVar

from data_migrations.run.report import PROGRESS_EVERY_SECONDS

T = TypeVar("T")
R = TypeVar("R")
QUEUED_PER_WORKER = 2


@dataclass(frozen=True)
class Done(Generic[T, R]):
    """One finished item: its result, or the exception its work raised."""

    item: T
    result: R | None
    error: BaseException | None


class _Stop:
    """Put once per worker: the worker that takes it ends."""


def _nothing() -> None:
    return None


def run_in_parallel(work: Callable[[T], R], items: Iterable[T], workers: int,
                    on_idle: Callable[[], None] = _nothing,
                    idle_seconds: float = PROGRESS_EVERY_SECONDS) -> Iterator[Done[T, R]]:
    """``work(item)`` for every item on ``workers`` threads, yielding in completion order.

    Only a few items per worker are queued at a time, so a million files never become a
    million queued items. ``on_idle`` runs whenever nothing finished for ``idle_seconds``
    (to print progress). Leaving the loop early (break, an exception) starts nothing more
    and waits for the work already running, so no upload is left half done in the
    background.

    Plain threads and two queues rather than a ThreadPoolExecutor: with thousands of short
    uploads, a Future per item and ``wait()`` over all pending futures after each one cost
    ~0.2 ms of CPU per item under the GIL, ten times what the queues cost.
    """
    remaining = iter(items)
    todo: SimpleQueue[T | _Stop] = SimpleQueue()
    finished: SimpleQueue[Done[T, R]] = SimpleQueue()
    stopping = Event()
    threads = [Thread(target=_serve, args=(work, todo, finished, stopping), daemon=True,
                      name=f"data-step-{number}") for number in range(workers)]
    for thread in threads:
        thread.start()
    try:
        pending = _queue_more(remaining, todo, workers * QUEUED_PER_WORKER)
        while pending:
            try:
                done = finished.get(timeout=idle_seconds)
            except Empty:
                on_idle()
                continue
            pending -= 1
            yield done
            pending += _queue_more(remaining, todo, 1)
    finally:
        stopping.set()
        for _ in threads:
            todo.put(_Stop())
        for thread in threads:
            thread.join()


def _queue_more(remaining: Iterator[T], todo: SimpleQueue[T | _Stop], count: int) -> int:
    """Queue up to ``count`` more items; returns how many there were."""
    queued = 0
    for item in remaining:
        todo.put(item)
        queued += 1
        if queued == count:
            break
    return queued


def _serve(work: Callable[[T], R], todo: SimpleQueue[T | _Stop],
           finished: SimpleQueue[Done[T, R]], stopping: Event) -> None:
    """A worker: run items until told to stop; once stopping, queued items are skipped."""
    while not isinstance(item := todo.get(), _Stop):
        if stopping.is_set():
            continue
        try:
            result = work(item)
        except BaseException as error:  # handed to the caller, like a Future would
            finished.put(Done(item, None, error))
        else:
            finished.put(Done(item, result, None))
