"""A column dropped by a downgrade only while it holds nothing the app wrote.

The downgrade of a revision that added a column drops it. Right after the upgrade that loses
nothing; a week later the column holds what the app wrote into it, and the downgrade would
drop that without a word. ``drop_added_column`` counts the column's values first (those
other than its default) and refuses, in one line naming the table, the column and the count,
unless ``DROP_APP_DATA`` says to drop them. Since it is the downgrade of an addition, the
linter's ``ban-drop-column`` is waived with that reason, so the revision needs no waiver of
its own:

    from data_migrations.online.columns import drop_added_column

    def upgrade() -> None:
        op.add_column("tasks", sa.Column("priority", sa.Integer(), nullable=True))

    def downgrade() -> None:
        drop_added_column("tasks", "priority")

In ``--sql`` the count is a comment: the DBA running the file by hand checks it there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from data_migrations.online.lint import waive
from data_migrations.online.run import drop_app_data_allowed
from data_migrations.run.drop_guard import SETTING
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.lock_retry import plural
from data_migrations.run.sql import quote

DEFAULT_OF = sa.text("""
    SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef AS d
    JOIN pg_attribute AS a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    WHERE d.adrelid = to_regclass(:table) AND a.attname = :column""")


def drop_added_column(table: str, column: str) -> None:
    """From a downgrade: ``DROP COLUMN``, refused while the column holds values other than its
    default, unless ``DROP_APP_DATA``."""
    context = op.get_context()
    if context.as_sql:
        context.impl.static_output(
            f"-- make downgrade refuses this while {table}.{column} holds values other than "
            f"its default, unless {SETTING}")
    elif not drop_app_data_allowed():
        held = values_held(op.get_bind(), table, column)
        if held:
            raise DataMigrationError(
                f"{table}.{column} holds {plural(held, 'value')} other than its default, written "
                f"since the column was added; nothing was dropped; back them up first, or to "
                f"drop them set {SETTING}")
    # Right before the statement: squawk reads a waiver on the line just above it.
    waive("ban-drop-column", reason=f"the downgrade of the revision that added {column}; "
          "refused online while it holds values the app wrote")
    op.drop_column(table, column)


def values_held(connection: sa.Connection, table: str, column: str) -> int:
    """The rows whose ``column`` is neither null nor its default."""
    default = connection.execute(DEFAULT_OF, {"table": quote(table), "column": column})
    expression = default.scalar()
    differs = f" AND {quote(column)} IS DISTINCT FROM ({expression})" if expression else ""
    return connection.execute(sa.text(
        f"SELECT count(*) FROM {quote(table)} WHERE {quote(column)} IS NOT NULL{differs}"
    )).scalar_one()
