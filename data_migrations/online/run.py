"""What the online helpers ask of the run they are part of."""

from __future__ import annotations

from alembic import op

from settings import ATTRIBUTE, declared


def is_dry_run() -> bool:
    """Whether this is the plan (``-x dry_run=true``): the whole chain in one transaction,
    rolled back at the end, where nothing may commit on its own. False when the revision
    runs without alembic/env.py's settings (a test's own migration context)."""
    config = op.get_context().config
    read = config.attributes.get(ATTRIBUTE) if config is not None else None
    return bool(read is not None and read[declared.DRY_RUN])
