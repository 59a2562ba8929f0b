"""What every online Alembic run does around its migrations (hooked in alembic/env.py).

- a lost connection to PostgreSQL becomes one line naming the step (lost_connection);
- every other run (upgrade, downgrade, the plan, stamp, check, and any run driven from
  Python) holds the one-run-at-a-time lock (run_lock) and refuses a target the app
  created without Alembic (refuse_unadopted below; ``make adopt-dev`` and
  ``make adopt-target``, data_migrations/commands/, adopt one). The commands that only show
  the version (``alembic current``, ``history -i``...) run beside a migration.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

import models
from data_migrations.run import lost_connection, run_lock
from data_migrations.run.errors import DataMigrationError

SHOWING_COMMANDS = {"current", "history", "heads", "branches", "show"}
BASELINE_REVISION = "0001"


@contextmanager
def guarded(connection: sa.Connection, cmd_opts: object, dry_run: bool) -> Iterator[None]:
    """``cmd_opts``: the parsed command line (``Config.cmd_opts``), None from Python."""
    with lost_connection.translated(connection):
        if run_lock.command_name(cmd_opts) in SHOWING_COMMANDS:
            yield
            return
        with run_lock.holding(connection, run_lock.describe(cmd_opts, dry_run)):
            refuse_unadopted(connection)
            yield


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
