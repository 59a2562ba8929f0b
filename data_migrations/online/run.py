"""What the online helpers ask of the run they are part of."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from settings import ATTRIBUTE, declared

# SQLSTATE lock_not_available: a lock not granted within lock_timeout. PostgreSQL rolls the
# statement back whole (the transaction too, unless a savepoint catches it).
LOCK_NOT_AVAILABLE = "55P03"


def is_dry_run() -> bool:
    """Whether this is the plan (``-x dry_run=true``): the whole chain in one transaction,
    rolled back at the end, where nothing may commit on its own. False when the revision
    runs without alembic/env.py's settings (a test's own migration context)."""
    config = op.get_context().config
    read = config.attributes.get(ATTRIBUTE) if config is not None else None
    return bool(read is not None and read[declared.DRY_RUN])


def lock_not_available(exc: BaseException) -> bool:
    """Whether ``exc`` (from SQLAlchemy or straight from the driver) is SQLSTATE 55P03."""
    error = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return getattr(error, "pgcode", None) == LOCK_NOT_AVAILABLE
