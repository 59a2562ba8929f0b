"""Rows as SQLite holds them into the text PostgreSQL's COPY reads: the row copy's work
for each row, done a rowid range at a time, in this process or in worker processes.

Each row is checked and converted (see values.py) and folded into an order-independent
checksum; a row PostgreSQL would refuse comes back with its findings instead. Nothing here
loads SQLAlchemy, so the worker processes start quickly and stay small.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import multiprocessing.connection
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass

from data_migrations.rows import source as src
from data_migrations.rows.values import BadValue, ColumnType, converter_for, row_converter
from data_migrations.run import interrupts
from data_migrations.run.report import shorten

NULL_TEXT = "\\N"


@dataclass(frozen=True)
class Finding:
    table: str
    key: object
    column: str
    value: object
    reason: str
    # The refused row (table, key) this reference leads to, when that is the whole fault.
    parent: tuple[str, object] | None = None

    @property
    def shown_value(self) -> str:
        return shorten(self.value)

    def __str__(self) -> str:
        return (f"{self.table} key={self.key!r} column {self.column}: {self.reason} "
                f"(value {self.shown_value})")


@dataclass(frozen=True)
class ForeignKey:
    index: int
    column: str
    parent: str
    nullable: bool
    orphans: frozenset


@dataclass(frozen=True)
class TableShape:
    """A table's columns as the converters see them: what a worker process is sent to
    build the same plan as this one."""

    name: str
    columns: tuple[ColumnType, ...]
    key: str


class TablePlan:
    """How one table's rows are read, checked, converted and compared."""

    def __init__(self, shape: TableShape) -> None:
        self.shape = shape
        self.name = shape.name
        self.columns = [c.name for c in shape.columns]
        self.required = [i for i, c in enumerate(shape.columns) if not c.nullable]
        self.converters = [converter_for(c) for c in shape.columns]
        self.convert_row = row_converter(shape.columns, NULL_TEXT)
        self.key_index = self.columns.index(shape.key)
        # With the orphans the source holds; set by the copy, which reads them.
        self.foreign_keys: list[ForeignKey] = []


@dataclass
class Converted:
    """One rowid range of a table, converted: its COPY text, the sum of its rows'
    checksums, and the rows PostgreSQL would refuse with their findings."""

    lines: bytes
    read: int
    written: int
    checksum: int
    refused: list[tuple[tuple, list[Finding]]]


# Checks a row's references (and may set one to NULL); returns the findings.
ReferenceCheck = Callable[[list], list[Finding]]


def convert_rows(plan: TablePlan, rows: Iterable[tuple],
                 check_references: ReferenceCheck | None = None) -> Converted:
    """Check and convert rows into COPY lines, summing their checksums."""
    lines: list[bytes] = []
    refused: list[tuple[tuple, list[Finding]]] = []
    checksum = read = 0
    convert_row = plan.convert_row
    md5, from_bytes, tabs = hashlib.md5, int.from_bytes, len(plan.columns) - 1
    for raw in rows:
        read += 1
        row = list(raw) if check_references else raw
        findings = check_references(row) if check_references else []
        try:
            fields = convert_row(row)
        except BadValue:
            fields = None
        if fields is None or findings:
            refused.append((raw, findings + value_findings(plan, row)))
            continue
        # The checksum digests the values joined by tabs (as target_checksum has
        # PostgreSQL do): the first 64 bits of its MD5, summed.
        text = "\t".join(fields).encode("utf-8")
        checksum += from_bytes(md5(text).digest()[:8], "big", signed=True)
        # Most rows need no escaping and their COPY line is that text itself: when
        # its only tabs are the separators and its only backslashes the NULLs'.
        if text.count(b"\\") == row.count(None) and text.count(b"\t") == tabs:
            if b"\n" in text or b"\r" in text:
                # UTF-8 uses these bytes for nothing else: they are replaced as bytes.
                text = text.replace(b"\n", b"\\n").replace(b"\r", b"\\r")
            lines.append(text + b"\n")
        else:
            lines.append(escaped_line(fields, row))
    return Converted(b"".join(lines), read, len(lines), checksum, refused)


def value_findings(plan: TablePlan, row: list | tuple) -> list[Finding]:
    """Every value of a row that PostgreSQL would refuse, with the reason."""
    findings = []
    key = row[plan.key_index]
    for index, value in enumerate(row):
        column = plan.columns[index]
        if value is None:
            if index in plan.required:
                findings.append(Finding(plan.name, key, column, value,
                                        "NULL in a NOT NULL column"))
            continue
        try:
            plan.converters[index](value)
        except BadValue as exc:
            findings.append(Finding(plan.name, key, column, value, str(exc)))
    return findings


def escaped_line(fields: list[str], row: Sequence[object]) -> bytes:
    """The COPY line of a row whose values hold tabs or backslashes; ``fields`` are the
    values' text (``\\N`` for NULL) and ``row`` the source values, None where NULL."""
    line = "\t".join(NULL_TEXT if value is None else _copy_field(field)
                      for field, value in zip(fields, row, strict=True))
    return (line + "\n").encode("utf-8")


def _copy_field(text: str) -> str:
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\n" in text:
        text = text.replace("\n", "\\n")
    if "\r" in text:
        text = text.replace("\r", "\\r")
    if "\t" in text:
        text = text.replace("\t", "\\t")
    return text


# A worker process's own connection to the source and the plans it has built.
_worker_source: sqlite3.Connection | None = None
_worker_plans: dict[str, TablePlan] = {}


def start_worker(source_path: str) -> None:
    """A worker's start: its own read-only connection to the source."""
    global _worker_source
    interrupts.ignored_in_workers()
    _worker_source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    threading.Thread(target=_end_with_parent, daemon=True).start()


def _end_with_parent() -> None:
    """Exit when the migration process is gone: killed, it cannot tell its workers to stop,
    and a worker waiting for its next range would wait forever."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


def convert_range(shape: TableShape, rowids: tuple[int, int]) -> Converted:
    """In a worker: read and convert one rowid range of a table."""
    assert _worker_source is not None
    plan = _worker_plans.get(shape.name)
    if plan is None:
        plan = _worker_plans[shape.name] = TablePlan(shape)
    return convert_rows(plan, src.stream_rows(_worker_source, plan.name, plan.columns, rowids))


def worker_pool(source: sqlite3.Connection, workers: int) -> ProcessPoolExecutor | None:
    """Processes that convert rowid ranges of the source, each with its own connection;
    None when one process is to do it all. They start on first use, so a small copy that
    never hands out a range never starts them."""
    if workers < 2:
        return None
    # Started fresh rather than forked: a fork would share the PostgreSQL connection.
    with interrupts.blocked_while_starting_workers():  # and its resource tracker
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=start_worker,
                                   initargs=(str(src.database_path(source)),))


def in_order(pool: Executor, work: Callable[..., Converted], items: Iterable[tuple],
             window: int) -> Iterator[Converted]:
    """``work(*item)`` for every item in the pool, yielded in the items' order, with at
    most ``window`` items queued or running; leaving early cancels the queued ones."""
    pending: deque[Future[Converted]] = deque()
    try:
        for item in items:
            with interrupts.blocked_while_starting_workers():  # a submit may start one
                pending.append(pool.submit(work, *item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
