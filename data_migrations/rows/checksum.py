"""The row count and checksum of a target table, computed by PostgreSQL: the copy checks
what it wrote with it, and ``make verify`` checks the finished cutover with it again.
"""

from __future__ import annotations

import sqlalchemy as sa

from data_migrations.rows import source as src
from data_migrations.rows.conversion import (
    NULL_TEXT,
    TablePlan,
    TableShape,
)
from data_migrations.rows.values import column_type

CHECKSUM_MASK = (1 << 64) - 1


def target_plan(target: sa.Table) -> TablePlan:
    """The plan of a reflected target table, its columns in the target's order."""
    return TablePlan(TableShape(target.name, tuple(map(column_type, target.columns)),
                                next(iter(target.primary_key.columns)).name))


def target_checksum(connection: sa.Connection, plan: TablePlan,
                    rewritten: dict[str, str] | None = None) -> tuple[int, int]:
    """Row count and checksum of a target table, computed by PostgreSQL over its own text
    of each value: the same text the converters sent, if the rows arrived unchanged.

    ``rewritten`` maps columns whose values a later step replaced to the bookkeeping
    table that holds their originals; the checksum then covers the originals."""
    rewritten = rewritten or {}
    key = src.quote(plan.columns[plan.key_index])
    joins, values = [], []
    for index, column in enumerate(plan.columns):
        value = f"t.{src.quote(column)}::text"
        if column in rewritten:
            alias = f"r{index}"
            joins.append(f"LEFT JOIN {src.quote(rewritten[column])} AS {alias} "
                         f"ON {alias}.table_name = '{plan.name}' "
                         f"AND {alias}.column_name = '{column}' AND {alias}.key = t.{key}::text")
            value = f"coalesce({alias}.original, {value})"
        values.append(f"coalesce({value}, :null)")
    count, total = connection.execute(sa.text(
        f"SELECT count(*), coalesce(sum(('x' || left(md5(concat_ws(E'\\t', {', '.join(values)})), "
        f"16))::bit(64)::bigint), 0) FROM {src.quote(plan.name)} AS t {' '.join(joins)}"),
        {"null": NULL_TEXT}).one()
    return count, int(total) & CHECKSUM_MASK
