"""What a column carries that ``DROP COLUMN`` would take with it, read from the catalog.

PostgreSQL drops a column's indexes (multi-column ones too) and its table's constraints on
it together with the column, without a word. A type change by expand and contract drops the
old column in the end, so before that it must know every such object: the indexes and the
foreign keys it copies onto the new column (``Copies``), and what it cannot copy safely (a
primary key, a unique constraint, a check, an expression index, a view, a key of another
table), which it names in one line and refuses. ``pg_depend`` lists exactly what depends
on the column, so nothing is missed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import sqlalchemy as sa

from data_migrations.run.sql import quote

MAX_NAME = 63  # PostgreSQL's identifier length
DEPENDENTS = sa.text("""
    SELECT pg_describe_object(d.classid, d.objid, d.objsubid),
           CASE WHEN d.classid = 'pg_class'::regclass
                THEN (SELECT relname FROM pg_class WHERE oid = d.objid)
                ELSE (SELECT conname FROM pg_constraint WHERE oid = d.objid) END,
           CASE WHEN d.classid = 'pg_class'::regclass
                THEN (SELECT relkind::text FROM pg_class WHERE oid = d.objid)
                WHEN d.classid = 'pg_constraint'::regclass
                THEN (SELECT contype::text FROM pg_constraint WHERE oid = d.objid) END,
           d.objid
    FROM pg_depend AS d JOIN pg_attribute AS a
      ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = to_regclass(:table)
      AND a.attname = :column AND d.deptype IN ('a', 'n')
      AND d.classid <> 'pg_attrdef'::regclass  -- the default: the swap moves it
    ORDER BY 2""")
INDEX = sa.text("""
    SELECT i.indisunique, am.amname, i.indnkeyatts,
           array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 ORDER BY k.n)::text[],
           i.indoption::int2[], i.indexprs IS NOT NULL, pg_get_expr(i.indpred, i.indrelid)
    FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
    JOIN pg_am AS am ON am.oid = c.relam WHERE i.indexrelid = :oid""")
FOREIGN_KEY = sa.text("""
    SELECT pg_get_constraintdef(c.oid),
           array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                 ORDER BY k.n)::text[]
    FROM pg_constraint AS c WHERE c.oid = :oid""")
DESCENDING, NULLS_FIRST = 1, 2  # pg_index.indoption bits


def copy_name(name: str) -> str:
    """The name of ``name``'s copy on the new column: ``<name>_tc``, shortened with a hash
    of the whole name where it would pass 63 characters."""
    if len(name) + 3 <= MAX_NAME:
        return f"{name}_tc"
    digest = hashlib.md5(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME - 12]}_{digest}_tc"


def scratch_name(name: str) -> str:
    """A third name for a swap of two names."""
    digest = hashlib.md5(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME - 15]}_{digest}_swap"


@dataclass(frozen=True)
class Copy:
    """One object the old column carries, its copy's name, and the SQL that makes the copy
    on the new column."""

    kind: str  # "index" or "foreign key"
    name: str
    create: str

    @property
    def copy(self) -> str:
        return copy_name(self.name)


@dataclass(frozen=True)
class Carried:
    """What the column carries: the copies to make, and what cannot be copied."""

    copies: list[Copy]
    refused: list[str]

    @property
    def indexes(self) -> list[Copy]:
        return [c for c in self.copies if c.kind == "index"]

    @property
    def foreign_keys(self) -> list[Copy]:
        return [c for c in self.copies if c.kind == "foreign key"]


def carried(connection: sa.Connection, table: str, column: str, target: str,
            own: set[str]) -> Carried:
    """What ``table.column`` carries, each index and foreign key with the SQL of its copy on
    ``target``; objects named in ``own`` (the change's own check) are left out."""
    copies, refused = [], []
    rows = connection.execute(DEPENDENTS, {"table": quote(table), "column": column}).all()
    for described, name, kind, oid in rows:
        if name in own:
            continue
        made = None
        if kind == "i":
            made = _index_copy(connection, oid, name, table, column, target)
        elif kind == "f":
            made = _foreign_key_copy(connection, oid, name, table, column, target)
        if made is None:
            refused.append(described)
        else:
            copies.append(made)
    return Carried(copies, refused)


def _index_copy(connection: sa.Connection, oid: int, name: str, table: str, column: str,
                target: str) -> Copy | None:
    unique, method, keys, names, options, expressions, where = connection.execute(
        INDEX, {"oid": oid}).one()
    mentions = re.compile(rf'\b{re.escape(column)}\b|"{re.escape(column)}"')
    if expressions or (where and mentions.search(where)):
        return None  # an expression over the column: no safe rewrite by text
    listed = [_key(target if n == column else n, o) for n, o in zip(names, options, strict=False)]
    included = [quote(target if n == column else n) for n in names[keys:]]
    create = (f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY IF NOT EXISTS "
              f"{quote(copy_name(name))} ON {quote(table)} USING {method} "
              f"({', '.join(listed[:keys])})"
              + (f" INCLUDE ({', '.join(included)})" if included else "")
              + (f" WHERE {where}" if where else ""))
    return Copy("index", name, create)


def _key(name: str, option: int) -> str:
    descending, nulls_first = option & DESCENDING, option & NULLS_FIRST
    order = " DESC" if descending else ""
    if nulls_first and not descending:
        order += " NULLS FIRST"
    elif descending and not nulls_first:
        order += " NULLS LAST"
    return quote(name) + order


def _foreign_key_copy(connection: sa.Connection, oid: int, name: str, table: str,
                      column: str, target: str) -> Copy:
    definition, names = connection.execute(FOREIGN_KEY, {"oid": oid}).one()
    referring = ", ".join(quote(target if n == column else n) for n in names)
    # REFERENCES … ON DELETE …, after the column list (names without ")" in them)
    rest = definition[definition.index(")") + 1:].removesuffix(" NOT VALID")
    create = (f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(copy_name(name))} "
              f"FOREIGN KEY ({referring}){rest} NOT VALID")
    return Copy("foreign key", name, create)
