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

import models
import settings
from data_migrations.commands.adopt_dev import (
    BASELINE_REVISION,
    Signature,
    differences,
    revisions,
    schema_signature,
    stamp_baseline,
)
from data_migrations.run import lost_connection, run_lock
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.report import log_to_stderr

log = logging.getLogger("cutover.adopt")


class TargetNotAdopted(DataMigrationError):
    """The target holds the app's tables but knows nothing of Alembic."""


def unadopted_tables(connection: sa.Connection) -> list[str]:
    """The app's tables on a target without ``alembic_version`` (none when it has one)."""
    inspector = sa.inspect(connection)
    if inspector.has_table("alembic_version"):
        return []
    return sorted(set(models.metadata.tables) & set(inspector.get_table_names()))


def refuse_unadopted(connection: sa.Connection) -> None:
    """Stop before a migration would create tables the app has already created."""
    outside_transaction = not connection.in_transaction()
    found = unadopted_tables(connection)
    if outside_transaction:  # leave no transaction open: Alembic begins its own
        connection.rollback()
    if found:
        fix = ("make adopt-dev DEV_DB=<file>" if connection.dialect.name == "sqlite"
               else "make adopt-target ENV=<name>")
        raise TargetNotAdopted(
            f"the target already has the app's tables ({', '.join(found)}) but no "
            f"alembic_version table: the app's create_all() made them. Run `{fix}` to "
            f"compare them with the baseline {BASELINE_REVISION} and stamp it; nothing "
            f"was changed")


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
                f"{str(exc.orig).strip().splitlines()[0]}") from None
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


def connect(engine: sa.Engine) -> sa.Connection:
    try:
        return engine.connect()
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise settings.ConfigError(
            f"cannot connect to {settings.mask_url(engine.url)}: {reason}") from None


def main() -> int:
    log_to_stderr()
    try:
        url = settings.read().database_url()
        if url.get_backend_name() != "postgresql":
            raise settings.ConfigError(
                "adopt-target takes a postgresql:// DATABASE_URL; a dev SQLite file is "
                "adopted with `make adopt-dev`")
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with connect(engine) as connection, lost_connection.translated(connection), \
                    run_lock.holding(connection, "adopt-target"):
                found = adopt_target(connection)
        finally:
            engine.dispose()
    except (settings.ConfigError, DataMigrationError) as exc:
        log.error(f"FAILED: {exc}")
        return 2
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
