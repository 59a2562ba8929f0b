"""What every online Alembic run does around its migrations (hooked in alembic/env.py).

- a lost connection to PostgreSQL becomes one line naming the step (lost_connection);
- every other run (upgrade, downgrade, the plan, stamp, check, and any run driven from
  Python) holds the one-run-at-a-time lock (run_lock) and refuses a target the app
  created without Alembic (data_migrations.commands.adopt_target). The commands that only show the
  version (``alembic current``, ``history -i``...) run beside a migration.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from data_migrations.commands.adopt_target import refuse_unadopted
from data_migrations.run import lost_connection, run_lock

SHOWING_COMMANDS = {"current", "history", "heads", "branches", "show"}


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
