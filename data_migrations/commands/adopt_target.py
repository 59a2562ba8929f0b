"""Adopt a PostgreSQL target whose tables the app's ``create_all()`` already made.

Such a target has the app's tables and no ``alembic_version``: ``alembic upgrade`` would
try to create them again. ``make adopt-target ENV=prod`` builds the baseline revision
in a scratch schema on the same server, inside a transaction that is rolled back (so
nothing of it stays, even if the command is killed), compares it with the target as
``make adopt-dev`` compares the dev file (columns and types, nullability, keys, foreign
keys with ON DELETE, unique constraints, indexes), and stamps the target at the baseline
when they match. When they differ it stamps nothing and lists each difference. The app's
tables are only read.

    # DATABASE_URL from the environment or .env.<ENV>:
    python -m data_migrations.commands.adopt_target
"""

from __future__ import annotations

import logging
import sys
import uuid

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

import settings
from data_migrations.commands.adopt_dev import (
    Signature,
    differences,
    revisions,
    schema_signature,
    stamp_baseline,
)
from data_migrations.run import failure, lost_connection, run_lock
from data_migrations.run.report import log_to_stderr
from data_migrations.run.run_guard import (
    BASELINE_REVISION,
    TargetNotAdopted,
    unadopted_tables,
)

log = logging.getLogger("cutover.adopt")


def baseline_signature(connection: sa.Connection) -> Signature:
    """The schema the baseline revision builds, built in a scratch schema and rolled back."""
    scratch = f"cutover_adopt_{uuid.uuid4().hex[:12]}"
    with connection.begin() as transaction:
        try:
            connection.execute(sa.text(f'CREATE SCHEMA "{scratch}"'))
        except sa.exc.ProgrammingError as exc:
            raise TargetNotAdopted(
                f"cannot build the baseline for the comparison: creating a scratch schema "
                f"(rolled back afterwards) needs the CREATE privilege on the database: "
                f"{failure.driver_message(exc)}") from None
        connection.execute(sa.text(f'SET LOCAL search_path TO "{scratch}"'))
        with Operations.context(MigrationContext.configure(connection)):
            revisions().get_revision(BASELINE_REVISION).module.upgrade()
        signature = schema_signature(connection, scratch)
        transaction.rollback()
    return signature


def adopt_target(connection: sa.Connection) -> list[str]:
    """Stamp the target at the baseline if it matches; return the differences otherwise."""
    if not unadopted_tables(connection):
        connection.rollback()
        raise TargetNotAdopted(
            "nothing to adopt: the target is under Alembic already, or has none of the "
            "app's tables (`make current ENV=<name>` shows which)")
    connection.rollback()
    expected = baseline_signature(connection)
    found = differences(expected, schema_signature(connection), "target")
    connection.rollback()
    if not found:
        with connection.begin():
            stamp_baseline(connection)
    return found


def main() -> int:
    log_to_stderr()
    return failure.command("adopt-target", "the stamp is one transaction, made whole or not at all",
                           adopt_configured_target)


def adopt_configured_target() -> int:
    """Adopt the DATABASE_URL target: 0 stamped, 1 not stamped (the differences listed)."""
    url = settings.read().database_url()
    if url.get_backend_name() != "postgresql":
        raise settings.ConfigError(
            "adopt-target takes a postgresql:// DATABASE_URL; a dev SQLite file is "
            "adopted with `make adopt-dev`")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with failure.connect(engine) as connection, lost_connection.translated(connection), \
                run_lock.holding(connection, "adopt-target"):
            found = adopt_target(connection)
    finally:
        engine.dispose()
    target = settings.mask_url(url)
    if found:
        log.info(f"Not stamped: {target} differs from the baseline {BASELINE_REVISION}; its "
                 f"tables were left as they are:")
        log.info("\n".join(f"  - {line}" for line in found))
        return 1
    log.info(f"Stamped {target} at the baseline {BASELINE_REVISION}: `make migrate` continues "
             f"from there.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
