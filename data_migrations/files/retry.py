"""A storage action retried as a whole, with backoff, while its failure may pass.

The SDK retries single requests; what still gets through (a store down for a while, a
connection dropped on every SDK attempt, a long spell of 5xx) is retried here after each
wait of a schedule, and a refusal (403, 400...) or a 501 fails at once. A stopping run starts no
new attempt. Hand-written rather than tenacity: the schedule is a plain tuple that the
tests and revision 0003 replace, the wait is cut short by the run's stop event, and the
final failure names the attempts; tenacity would need a custom stop, sleep and error
callback for the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from threading import Event
from typing import TypeVar

from data_migrations.run.parallel import Done
from storage import FileChanged, StorageError

R = TypeVar("R")

# The waits between the attempts of a storage action: 31 s in all, so that an outage of
# the store shorter than 30 s is ridden out. Revision 0003 takes another schedule from the
# Alembic config attribute RETRY_BACKOFF_ATTRIBUTE when one is given (tests do).
RETRY_BACKOFF_SECONDS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
RETRY_BACKOFF_ATTRIBUTE = "storage_retry_backoff_seconds"

# The waits before a file that changed while it was read is read again: four reads over
# about 3.5 s, so that a file the app was finishing is taken once done, while one it keeps
# writing is named ("changing while read") instead of holding the run.
CHANGE_WAITS_SECONDS: tuple[float, ...] = (0.5, 1.0, 2.0)


class ActionFailure(Exception):
    """A storage action that kept failing; the message names the file and the attempts."""


def retrying(action: Callable[[], R], name: str,
             backoff: Sequence[float] = RETRY_BACKOFF_SECONDS, stopping: Event | None = None) -> R:
    """``action()``, tried again after each wait of ``backoff`` while it fails in a way
    that may pass, and after each of CHANGE_WAITS_SECONDS while the file it reads changes
    under it (FileChanged, raised once those are spent).

    The SDK already retries single requests; this retries the whole action (a file's upload
    with all its parts, a stat) for what still gets through: a store that is down for a
    while, a connection dropped on every SDK attempt, a long spell of 5xx. Once
    ``stopping`` is set, no new attempt starts."""
    waits, change_waits = iter(backoff), iter(CHANGE_WAITS_SECONDS)
    attempt = 1
    while True:
        try:
            return action()
        except FileChanged:
            wait = next(change_waits, None)
            if wait is None or _stopped(stopping, wait):
                raise
        except StorageError as error:
            wait = next(waits, None)
            if wait is None or is_permanent(error) or _stopped(stopping, wait):
                raise ActionFailure(f"{name} (after {attempt} attempt"
                                    f"{'s' if attempt > 1 else ''}): {error}") from error
        attempt += 1


def _stopped(stopping: Event | None, wait: float) -> bool:
    """Wait ``wait`` seconds, or less once ``stopping`` is set; whether it is."""
    if stopping is None:
        time.sleep(wait)
        return False
    return stopping.wait(wait)


# Answers that say the request itself will never succeed, whenever it is sent again: a
# refusal (4xx) other than a timeout or a throttle, and a call the store does not implement.
TRANSIENT_4XX = (408, 429)
NOT_IMPLEMENTED = 501


def is_permanent(error: StorageError) -> bool:
    """A refusal (403, 400, ...) or a 501 Not Implemented fails the same way every time;
    the other 5xx, 408, 429 and lost connections may not."""
    status = getattr(error.__cause__, "status_code", None)
    if not isinstance(status, int):
        return False
    return (400 <= status < 500 and status not in TRANSIENT_4XX) or status == NOT_IMPLEMENTED


def failure_text(done: Done) -> str | None:
    """A worker's expected failure as one line; anything else is a bug and propagates."""
    if done.error is None:
        return None
    if isinstance(done.error, ActionFailure | StorageError | OSError):
        return str(done.error)
    raise done.error


def denied(failure: ActionFailure) -> bool:
    """The action kept failing because the key's policy does not allow it."""
    return isinstance(failure.__cause__, StorageError) and failure.__cause__.denied
