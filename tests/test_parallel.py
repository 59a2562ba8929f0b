"""run_in_parallel: every item once, errors handed back, an early exit starts nothing more."""

from __future__ import annotations

import threading
import time

import pytest

from data_migrations import parallel
from data_migrations.parallel import run_in_parallel


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
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        time.sleep(0.05)
        return item

    for _ in run_in_parallel(work, range(1000), 4):
        break
    count = len(started)
    time.sleep(0.2)

    assert count < 20  # the 4 running, and a few more started as those finished
    assert len(started) == count
    assert not any(thread.name.startswith("data-step-") for thread in threading.enumerate())


def test_on_idle_runs_while_nothing_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "PROGRESS_EVERY_SECONDS", 0.02)
    idle: list[None] = []

    done = list(run_in_parallel(lambda item: time.sleep(0.2), [1], 2,
                                on_idle=lambda: idle.append(None)))

    assert len(done) == 1
    assert len(idle) >= 3
