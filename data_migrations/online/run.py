"""What the online helpers ask of the run they are part of. The lock policy and the test
for SQLSTATE 55P03 are the run's (data_migrations/run/lock_retry.py), shared with the
revisions' retries."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op

from data_migrations.run import open_work
from data_migrations.run.lock_retry import Policy
from settings import ATTRIBUTE, Setting, Settings, declared

log = logging.getLogger("cutover.online")

# Outside a run's settings (a test's own migration context, a script on its own connection):
# locks are waited for without limit, so a lock timeout never arises to be retried.
WITHOUT_LOCK_TIMEOUT = Policy(lock_timeout=0.0, retries=0, backoff=0.0)


def _settings() -> Settings | None:
    """The run's settings, as alembic/env.py left them; None when the revision runs without
    them (a test's own migration context)."""
    config = op.get_context().config
    return config.attributes.get(ATTRIBUTE) if config is not None else None


def skipped_in_dry_run(what: str, because: str) -> bool:
    """Whether to skip work that commits on its own: the plan runs in one transaction it
    rolls back, where nothing may commit on its own; logged as a line that says so."""
    if is_dry_run():
        log.info("Dry run: %s (%s)", what, because)
        return True
    return False


def is_dry_run() -> bool:
    """Whether this is the plan (``-x dry_run=true``): the whole chain in one transaction,
    rolled back at the end, where nothing may commit on its own."""
    return _flag(declared.DRY_RUN)


def drop_app_data_allowed() -> bool:
    """Whether the operator let a downgrade drop what the app wrote (``DROP_APP_DATA``)."""
    return _flag(declared.DROP_APP_DATA)


def _flag(setting: Setting) -> bool:
    """A true-or-false setting of the run; false without the run's settings."""
    read = _settings()
    return bool(read is not None and read[setting])


def lock_policy() -> Policy:
    """The run's lock timeout and retries, for the work a helper runs outside the revision's
    transaction (and so outside its ``SET LOCAL lock_timeout``)."""
    read = _settings()
    return WITHOUT_LOCK_TIMEOUT if read is None else Policy.of(read)


@contextmanager
def outside_transaction() -> Iterator[None]:
    """Alembic's ``autocommit_block()`` for work that must commit on its own, after which the
    revision goes on under its lock timeout again: the block commits the revision's
    transaction, and its ``SET LOCAL lock_timeout`` ends with it, so a statement the revision
    runs after a helper would otherwise wait for its lock without limit (``--sql`` shows the
    ``SET`` where it will run). It refuses, before anything commits, when the revision
    changed something before it (data_migrations/run/open_work.py says why)."""
    context = op.get_context()
    connection = None if context.as_sql else op.get_bind()
    if connection is not None:
        open_work.refuse_commit(connection)
    with context.autocommit_block():
        yield
    if connection is not None:
        open_work.committed(connection)
    policy = lock_policy()
    if policy.lock_timeout and context.dialect.name == "postgresql":
        context.execute(policy.set_local())
