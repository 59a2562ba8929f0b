"""What ``make lint`` reads in a revision's rendered SQL besides squawk's rules: the
statements with the waivers above them, what each adds and drops, and the project's own
rules on them.

- ``raw-dml``: an ``UPDATE``, ``DELETE`` or ``INSERT`` on a table the revision did not create
  runs in one statement, in the revision's transaction: it holds a row lock on every row it
  changes until the revision commits, and the app's writes to those rows wait for all of
  it. The batched backfill (data_migrations/online/backfill.py) renders only a comment
  under ``--sql``, so it passes; a few rows on purpose carry ``waive("raw-dml", reason=...)``.
- ``drop-mapped``: an upgrade that drops a column or table that ``models/`` still maps
  (and no later revision adds back). The app of this release still reads and writes it, and
  its next query fails the moment the revision commits. No waiver silences it: the app
  stops using the column in one release (it leaves ``models/``), the column goes in the
  next (Rails' ``ignored_columns``).
- A downgrade that drops exactly what its own upgrade added (a column, index, table or
  constraint) takes nothing the app had before the revision: squawk's drop rules are not
  reported on it, so the way back of an addition needs no waiver.

The SQL is Alembic's ``--sql`` output: one statement ends on a line that ends with ``;``,
and a waiver is the ``-- squawk-ignore`` comment on the line just before it (as squawk reads
it; data_migrations/online/lint.py writes it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import MetaData
from sqlalchemy.orm import registry

RAW_DML = "raw-dml"
DROP_MAPPED = "drop-mapped"
OWN_RULES = (RAW_DML, DROP_MAPPED)
# squawk's rules on dropping something, not reported on a drop of the upgrade's own addition.
DROP_RULES = frozenset({"ban-drop-column", "ban-drop-table", "ban-drop-constraint",
                        "require-concurrent-index-deletion"})
# Alembic's own bookkeeping, written by every revision: not the app's rows.
VERSION_TABLE = "alembic_version"

WAIVER = re.compile(r"^\s*--\s*squawk-ignore\s+(.+?)(?:\s+--.*)?$")
NAME = r'(?:"[^"]+"|[\w$]+)'
QUALIFIED = rf"(?:{NAME}\.)?({NAME})"
DML = re.compile(rf"^(?:WITH\b.*?\b)?(UPDATE|DELETE\s+FROM|INSERT\s+INTO|MERGE\s+INTO)\s+"
                 rf"(?:ONLY\s+)?{QUALIFIED}", re.IGNORECASE)
CREATE_TABLE = re.compile(rf"^CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
                          rf"{QUALIFIED}", re.IGNORECASE)
DROP_TABLE = re.compile(rf"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{QUALIFIED}", re.IGNORECASE)
CREATE_INDEX = re.compile(rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?"
                          rf"(?:IF\s+NOT\s+EXISTS\s+)?({NAME})\s+ON\b", re.IGNORECASE)
DROP_INDEX = re.compile(rf"^DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?"
                        rf"{QUALIFIED}", re.IGNORECASE)
ALTER_TABLE = re.compile(rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{QUALIFIED}\s+"
                         r"(.*)$", re.IGNORECASE)
ADD_CONSTRAINT = re.compile(rf"^ADD\s+CONSTRAINT\s+({NAME})", re.IGNORECASE)
DROP_CONSTRAINT = re.compile(rf"^DROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?({NAME})",
                             re.IGNORECASE)
ADD_COLUMN = re.compile(rf"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?({NAME})",
                        re.IGNORECASE)
DROP_COLUMN = re.compile(rf"^DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?({NAME})", re.IGNORECASE)
# ADD/DROP followed by these is no column: a table constraint, or a column's attribute.
NOT_COLUMNS = {"constraint", "primary", "unique", "check", "foreign", "exclude", "default",
               "not", "expression", "identity"}

# What a statement adds or drops: ("column", table, column), ("table", table),
# ("index", index), ("constraint", table, constraint).
SchemaObject = tuple[str, ...]


@dataclass(frozen=True)
class Statement:
    """One rendered statement on one line, where it stands in the file (0-based lines), and
    the rules the comment just above it waives."""

    text: str
    first_line: int
    last_line: int
    waived: frozenset[str]

    def covers(self, line: int) -> bool:
        return self.first_line <= line <= self.last_line


def parsed(sql: str) -> list[Statement]:
    """The statements of a rendered file, comments left out (a waiver kept with its
    statement)."""
    found, lines, start = [], sql.splitlines(), None
    for number, line in enumerate(lines):
        if start is None:
            if not line.strip() or line.lstrip().startswith("--"):
                continue
            start = number
        if line.rstrip().endswith(";"):
            text = " ".join(" ".join(lines[start:number + 1]).split()).removesuffix(";")
            found.append(Statement(text, start, number, waivers(lines[start - 1:start])))
            start = None
    return found


def waivers(above: list[str]) -> frozenset[str]:
    matched = WAIVER.match(above[0]) if above else None
    return frozenset(r.strip() for r in matched.group(1).split(",")) if matched else frozenset()


def bare(name: str) -> str:
    return name[1:-1] if name.startswith('"') else name.lower()


def actions(clause: str) -> list[str]:
    """An ``ALTER TABLE``'s actions, split at the commas outside parentheses."""
    parts, depth, current = [], 0, []
    for char in clause:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    return [*parts, "".join(current).strip()]


def changed(statement: str) -> tuple[set[SchemaObject], set[SchemaObject]]:
    """What a statement adds, and what it drops."""
    added: set[SchemaObject] = set()
    dropped: set[SchemaObject] = set()
    for pattern, kind, into in ((CREATE_TABLE, "table", added), (DROP_TABLE, "table", dropped),
                                (CREATE_INDEX, "index", added), (DROP_INDEX, "index", dropped)):
        if matched := pattern.match(statement):
            into.add((kind, bare(matched.group(1))))
    if altered := ALTER_TABLE.match(statement):
        table = bare(altered.group(1))
        for action in actions(altered.group(2)):
            for pattern, kind, into in ((ADD_CONSTRAINT, "constraint", added),
                                        (DROP_CONSTRAINT, "constraint", dropped),
                                        (ADD_COLUMN, "column", added),
                                        (DROP_COLUMN, "column", dropped)):
                matched = pattern.match(action)
                if matched and (kind == "constraint"
                                or matched.group(1).lower() not in NOT_COLUMNS):
                    into.add((kind, table, bare(matched.group(1))))
                    break
    return added, dropped


def added_by(statements: Iterable[Statement]) -> set[SchemaObject]:
    return {added for s in statements for added in changed(s.text)[0]}


def raw_dml(statements: list[Statement]) -> list[tuple[str, Statement]]:
    """(message, statement) for each data change of a table this SQL did not create, not
    waived."""
    created: set[str] = set()
    found = []
    for statement in statements:
        created |= {obj[1] for obj in changed(statement.text)[0] if obj[0] == "table"}
        matched = DML.match(statement.text)
        if matched is None or RAW_DML in statement.waived:
            continue
        table = bare(matched.group(2))
        if table != VERSION_TABLE and table not in created:
            verb = matched.group(1).split()[0].upper()
            found.append((f"{verb} of {table} in one statement holds a lock on every row it "
                          "changes until the revision commits, and the app's writes to them "
                          "wait: change a live table's rows with data_migrations.online."
                          "backfill (batches, one commit each), or waive(\"raw-dml\", "
                          "reason=...) for a few rows", statement))
    return found


def mapped_drops(statements: list[Statement], metadata: MetaData, models: registry,
                 added_later: set[SchemaObject]) -> list[tuple[str, Statement]]:
    """(message, statement) for each column or table the models still map that an upgrade
    drops and no later revision adds back; a waiver does not count."""
    found = []
    for statement in statements:
        for dropped in sorted(changed(statement.text)[1]):
            if dropped in added_later:
                continue
            mapped = mapped_name(dropped, metadata, models)
            if mapped:
                found.append((f"drops {mapped}, which models/ still maps: the app of this "
                              "release still reads it and fails once it is gone; release the "
                              "app without it first (remove it from models/), then drop it in "
                              "a revision of the next release (no waiver applies)", statement))
    return found


def mapped_name(dropped: SchemaObject, metadata: MetaData, models: registry) -> str | None:
    """``Model.attribute (table.column)`` or ``Model (table)`` of a mapped column or table."""
    if dropped[0] not in ("column", "table") or dropped[1] not in metadata.tables:
        return None
    table = metadata.tables[dropped[1]]
    mapper = next((m for m in models.mappers if m.local_table is table), None)
    model = mapper.class_.__name__ if mapper else table.name
    if dropped[0] == "table":
        return f"{model} (table {table.name})"
    column = dropped[2]
    if column not in table.columns:
        return None
    attribute = next((key for key, c in (mapper.columns.items() if mapper else [])
                      if c.name == column), column)
    return f"{model}.{attribute} ({table.name}.{column})"


def own_drops(upgrade: list[Statement], downgrade: list[Statement]) -> list[Statement]:
    """The downgrade's statements that drop only what the upgrade added."""
    added = added_by(upgrade)
    return [s for s in downgrade
            if (dropped := changed(s.text)[1]) and dropped <= added_closure(added, dropped)]


def added_closure(added: set[SchemaObject], dropped: set[SchemaObject]) -> set[SchemaObject]:
    """What the upgrade added, with the columns and constraints of the tables it created:
    dropping those goes with the table."""
    tables = {obj[1] for obj in added if obj[0] == "table"}
    return added | {obj for obj in dropped if obj[0] in ("column", "constraint")
                    and obj[1] in tables}
