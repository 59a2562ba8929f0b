"""The rows the row copy refuses, told root causes first.

A row is either bad in itself (a value PostgreSQL would refuse, a reference to a row the
source does not hold) or refused only because a row it references was refused. One bad
user can drag hundreds of tasks, transcripts and artifacts with it; listing those first
would hide the other real defects. So the operator sees every row that is bad in itself
(up to ``ROOTS_LISTED``, in table order), then one line per table for its dependent rows,
naming the root rows they lead back to. Every finding, root and dependent, goes to a JSON
Lines file as it is found, so memory holds only the keys of refused rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from data_migrations.rows.conversion import Finding
from data_migrations.run.report import RejectsFile

# Root rows listed before "... and N more": with the headline, one line per dependent
# table and the closing lines, a refusal stays within 40 lines, one screen.
ROOTS_LISTED = 25
KEYS_PER_LINE = 5  # root keys a dependents line names before "and N more"

Row = tuple[str, object]  # (table, key)


@dataclass
class Dependents:
    """A table's rows refused only through their references."""

    rows: int = 0
    # The root rows they lead back to, by table, keys in the order they were met.
    roots: dict[str, dict[object, None]] = field(default_factory=dict)
    # Parent tables whose refused rows were dependents themselves.
    through: set[str] = field(default_factory=set)

    def add(self, roots: Iterable[Row], through: Iterable[str]) -> None:
        self.rows += 1
        for table, key in roots:
            self.roots.setdefault(table, {})[key] = None
        self.through.update(through)

    def line(self, table: str, number: dict[Row, int]) -> str:
        """``number`` orders the root rows as they are listed."""
        ordered = sorted(((t, k) for t, keys in self.roots.items() for k in keys),
                         key=number.__getitem__)
        by_table: dict[str, list[object]] = {}
        for root_table, key in ordered:
            by_table.setdefault(root_table, []).append(key)
        named = ", ".join(_keys_text(t, keys) for t, keys in by_table.items())
        via = f" (through {', '.join(sorted(self.through))})" if self.through else ""
        verb = "depends" if self.rows == 1 else "depend"
        return f"{table}: {_rows(self.rows)} {verb} on rejected {named}{via}"


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _keys_text(table: str, keys: list[object]) -> str:
    shown = ", ".join(repr(k) if isinstance(k, str) else str(k) for k in keys[:KEYS_PER_LINE])
    more = len(keys) - KEYS_PER_LINE
    return f"{table} {shown}" + (f" and {more:,} more" if more > 0 else "")


class Refusals:
    """Every refused row of one copy: which are root causes, which depend on them."""

    def __init__(self, findings_file: RejectsFile | None) -> None:
        # The root rows each refused row leads back to (itself, for a root row).
        self._roots_of: dict[str, dict[object, frozenset[Row]]] = {}
        self.listed: list[list[Finding]] = []  # the first root rows' findings
        self._number: dict[Row, int] = {}  # each root row's place in table order
        self.dependents: dict[str, Dependents] = {}
        self.file = findings_file

    def is_refused(self, table: str, key: object) -> bool:
        return key in self._roots_of.get(table, ())

    def refused_in(self, table: str) -> bool:
        return bool(self._roots_of.get(table))

    @property
    def root_rows(self) -> int:
        return len(self._number)

    @property
    def rows(self) -> int:
        return self.root_rows + self.dependent_rows

    @property
    def dependent_rows(self) -> int:
        return sum(d.rows for d in self.dependents.values())

    def add(self, table: str, key: object, findings: list[Finding]) -> None:
        own = [f for f in findings if f.parent is None]
        if own:
            roots: frozenset[Row] = frozenset({(table, key)})
            self._number[(table, key)] = len(self._number)
            if len(self.listed) < ROOTS_LISTED:
                self.listed.append(own)
        else:
            parents = {f.parent for f in findings if f.parent is not None}
            roots = frozenset().union(*(self._roots_of[t][k] for t, k in parents))
            through = {t for t, k in parents if self._roots_of[t][k] != {(t, k)}}
            self.dependents.setdefault(table, Dependents()).add(roots, through)
        self._roots_of.setdefault(table, {})[key] = roots
        if self.file is not None:
            self.file.write(_record(table, key, own or findings, None if own else roots))

    def lines(self) -> list[str]:
        """The root rows, then one line per table of dependent rows."""
        lines = [f"  - {_row_text(findings)}" for findings in self.listed]
        if self.root_rows > len(self.listed):
            lines.append(f"  ... and {self.root_rows - len(self.listed):,} more bad in "
                         "themselves")
        if self.dependents:
            lines.append("  Refused only because they depend on those:")
            lines += [f"  - {d.line(table, self._number)}"
                      for table, d in self.dependents.items()]
        return lines

    def headline(self) -> str:
        text = f"{_rows(self.root_rows)} PostgreSQL would refuse"
        if self.dependents:
            text += f", and {_rows(self.dependent_rows)} that depend on them"
        return text


def _row_text(findings: list[Finding]) -> str:
    """One line for a row: its first finding in full, the others by column."""
    first, *others = findings
    return "; ".join([str(first), *(f"column {f.column}: {f.reason} (value {f.shown_value})"
                                    for f in others)])


def _record(table: str, key: object, findings: list[Finding],
            roots: frozenset[Row] | None) -> dict:
    record = {"table": table, "key": key, "cause": "itself" if roots is None else "depends",
              "findings": [{"column": f.column, "value": f.value, "reason": f.reason}
                           for f in findings]}
    if roots is not None:
        record["root_rows"] = [{"table": t, "key": k} for t, k in sorted(roots, key=str)]
    return record
