"""A downgrade never drops the app's rows without being told to.

The baseline's downgrade drops every table of the app. On the cutover day that is the way
back: the rows downgrade (0002) has already deleted the copied rows, so the tables are empty.
After go-live the tables hold what the app's users made, and ``make downgrade REV=base`` is
one typo away from dropping it. So before the baseline's downgrade runs, every table it
would drop is counted; while any holds a row the downgrade refuses, in one line naming the
tables and their counts, unless ``DROP_APP_DATA`` says to drop them. A column a later
revision drops in its downgrade is guarded the same way by
``data_migrations.online.columns.drop_added_column``.
"""

from __future__ import annotations

import sqlalchemy as sa

from data_migrations.run.errors import DataMigrationError
from data_migrations.run.sql import quote

# The app's tables: every table of the schema but Alembic's and the cutover's bookkeeping
# (cutover_*), which the data revisions' downgrades have dropped or emptied by then.
APP_TABLES = sa.text(r"""
    SELECT c.relname FROM pg_class AS c
    WHERE c.relkind IN ('r', 'p') AND c.relnamespace = current_schema()::regnamespace
      AND c.relname <> 'alembic_version' AND c.relname NOT LIKE 'cutover\_%'
    ORDER BY c.relname""")
SETTING = "DROP_APP_DATA=true (-x drop_app_data=true)"


def tables_with_rows(connection: sa.Connection) -> list[tuple[str, int]]:
    """Each app table that holds rows, with its count."""
    counted = []
    for table in connection.execute(APP_TABLES).scalars():
        rows = connection.execute(sa.text(f"SELECT count(*) FROM {quote(table)}")).scalar_one()
        if rows:
            counted.append((table, rows))
    return counted


def refuse_dropping_rows(connection: sa.Connection, where: str, at: str,
                         allowed: bool) -> None:
    """Before the baseline's downgrade: refuse while an app table holds rows, unless
    ``allowed``; ``where`` names the revision file, ``at`` the version it leaves as it is."""
    if allowed:
        return
    holding = tables_with_rows(connection)
    if not holding:
        return
    counts = ", ".join(f"{table} {rows:,}" for table, rows in holding)
    raise DataMigrationError(
        f"{where}: would drop tables that still hold rows ({counts}): after go-live they are "
        f"the app's; nothing was dropped, the database is at {at}; back them up first, or "
        f"to drop them with their rows set {SETTING}")
