"""What the online helpers ask of the run they are part of."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

from settings import ATTRIBUTE, Settings, declared

# SQLSTATE lock_not_available: a lock not granted within lock_timeout. PostgreSQL rolls the
# statement back whole (the transaction too, unless a savepoint catches it).
LOCK_NOT_AVAILABLE = "55P03"
LONGEST_PAUSE = 60.0


@dataclass(frozen=True)
class Policy:
    """How long a lock is waited for, and how often and after what pause the work that
    waited is tried again: LOCK_TIMEOUT, LOCK_RETRIES, LOCK_RETRY_BACKOFF."""

    lock_timeout: float  # seconds; 0 = none
    retries: int
    backoff: float  # seconds before the first retry

    @classmethod
    def of(cls, cutover: Settings) -> Policy:
        return cls(cutover[declared.LOCK_TIMEOUT], cutover[declared.LOCK_RETRIES],
                   cutover[declared.LOCK_RETRY_BACKOFF])

    def pause(self, failed_attempt: int) -> float:
        return min(self.backoff * 2 ** (failed_attempt - 1), LONGEST_PAUSE)

    def set_local(self) -> str:
        """The statement that puts the rest of a transaction under this lock timeout."""
        return f"SET LOCAL lock_timeout = '{round(self.lock_timeout * 1000)}ms'"


# Outside a run's settings (a test's own migration context, a script on its own connection):
# locks are waited for without limit, so a lock timeout never arises to be retried.
WITHOUT_LOCK_TIMEOUT = Policy(lock_timeout=0.0, retries=0, backoff=0.0)


def _settings() -> Settings | None:
    """The run's settings, as alembic/env.py left them; None when the revision runs without
    them (a test's own migration context)."""
    config = op.get_context().config
    return config.attributes.get(ATTRIBUTE) if config is not None else None


def is_dry_run() -> bool:
    """Whether this is the plan (``-x dry_run=true``): the whole chain in one transaction,
    rolled back at the end, where nothing may commit on its own."""
    read = _settings()
    return bool(read is not None and read[declared.DRY_RUN])


def lock_policy() -> Policy:
    """The run's lock timeout and retries, for the work a helper runs outside the revision's
    transaction (and so outside its ``SET LOCAL lock_timeout``)."""
    read = _settings()
    return WITHOUT_LOCK_TIMEOUT if read is None else Policy.of(read)


def lock_not_available(exc: BaseException) -> bool:
    """Whether ``exc`` (from SQLAlchemy or straight from the driver) is SQLSTATE 55P03."""
    error = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return getattr(error, "pgcode", None) == LOCK_NOT_AVAILABLE


@contextmanager
def outside_transaction() -> Iterator[None]:
    """Alembic's ``autocommit_block()`` for work that must commit on its own, after which the
    revision goes on under its lock timeout again: the block commits the revision's
    transaction, and its ``SET LOCAL lock_timeout`` ends with it, so a statement the revision
    runs after a helper would otherwise wait for its lock without limit (``--sql`` shows the
    ``SET`` where it will run)."""
    context = op.get_context()
    with context.autocommit_block():
        yield
    policy = lock_policy()
    if policy.lock_timeout and context.dialect.name == "postgresql":
        context.execute(policy.set_local())
