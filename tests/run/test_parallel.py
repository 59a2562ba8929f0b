"""run_in_parallel: every item once, errors handed back, an early exit starts nothing more."""

from __future__ import annotations

import threading

from data_migrations.run.parallel import QUEUED_PER_WORKER, run_in_parallel

# A guard so that a broken run_in_parallel fails the test instead of hanging the suite.
GUARD_SECONDS = 30


def test_every_item_is_done_once_with_its_result_or_error() -> None:
    def work(item: int) -> int:
        if item % 10 == 3:
            raise ValueError(f"bad {item}")
        return item * 2

    done = list(run_in_parallel(work, range(100), 8))

    assert sorted(d.item for d in done) == list(range(100))
    assert all(d.result == d.item * 2 and d.error is None for d in done if d.item % 10 != 3)
    assert sorted(str(d.error) for d in done if d.error) == sorted(
        f"bad {item}" for item in range(3, 100, 10))


def test_leaving_early_starts_nothing_more_and_waits_for_running_work() -> None:
    workers = 4
    started: set[int] = set()
    finished: set[int] = set()
    release = threading.Event()
    lock = threading.Lock()

    def work(item: int) -> int:
        with lock:
            started.add(item)
        if item != 0:  # every item but the first is still running when the caller leaves
            release.wait(GUARD_SECONDS)
        with lock:
            finished.add(item)
        return item

    results = run_in_parallel(work, range(1000), workers)
    first = next(results)
    release.set()
    results.close()  # what a break or an exception in the caller's loop does

    assert first.item == 0
    # Only items queued before the caller left may have run: the initial queue and the one
    # item queued after the first result.
    assert max(started) < workers * QUEUED_PER_WORKER + 1
    assert finished == started  # everything that started had finished when close returned
    assert not any(thread.name.startswith("data-step-") for thread in threading.enumerate())


def test_on_idle_runs_while_nothing_finishes() -> None:
    idle_calls: list[None] = []
    seen_three = threading.Event()

    def on_idle() -> None:
        idle_calls.append(None)
        if len(idle_calls) == 3:
            seen_three.set()

    # The one item finishes only once on_idle has run three times while it was running.
    done = list(run_in_parallel(lambda item: seen_three.wait(GUARD_SECONDS), [1], 2,
                                on_idle=on_idle, idle_seconds=0.01))

    assert [d.result for d in done] == [True]
    assert len(idle_calls) >= 3
