"""One function over many items on a thread pool, each result handed back as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from data_migrations.report import PROGRESS_EVERY_SECONDS

T = TypeVar("T")
R = TypeVar("R")
QUEUED_PER_WORKER = 2


@dataclass(frozen=True)
class Done(Generic[T, R]):
    """One finished item: its result, or the exception its work raised."""

    item: T
    result: R | None
    error: BaseException | None


def _nothing() -> None:
    return None


def run_in_parallel(work: Callable[[T], R], items: Iterable[T], workers: int,
                    on_idle: Callable[[], None] = _nothing) -> Iterator[Done[T, R]]:
    """``work(item)`` for every item on ``workers`` threads, yielding in completion order.

    Only a few items per worker are queued at a time, so a million files never become a
    million futures. ``on_idle`` runs whenever nothing finished for a while (to print
    progress). Leaving the loop early (break, an exception) starts nothing more and waits
    for the work already running, so no upload is left half done in the background.
    """
    remaining = iter(items)
    pending: dict[Future[R], T] = {}
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="data-step")

    def fill() -> None:
        for item in remaining:
            pending[executor.submit(work, item)] = item
            if len(pending) >= workers * QUEUED_PER_WORKER:
                return

    try:
        fill()
        while pending:
            finished, _ = wait(pending, timeout=PROGRESS_EVERY_SECONDS,
                               return_when=FIRST_COMPLETED)
            if not finished:
                on_idle()
            for future in finished:
                item = pending.pop(future)
                error = future.exception()
                yield Done(item, None if error else future.result(), error)
            fill()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
