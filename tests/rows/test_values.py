"""The converters spell every value exactly as PostgreSQL prints it, so the row copy's
checksums agree; and they refuse what PostgreSQL would refuse."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from data_migrations.rows.values import (
    BadValue,
    ColumnType,
    column_type,
    converter_for,
    row_converter,
)
from devtools.postgres_server import PostgresServer

CASES: list[tuple[str, sa.types.TypeEngine, object]] = [
    ("timestamptz", sa.DateTime(timezone=True), "2025-03-04 05:06:07.120000"),
    ("timestamptz", sa.DateTime(timezone=True), "2025-03-04T13:06:07+08:00"),
    ("timestamptz", sa.DateTime(timezone=True), "2025-03-04T05:06:07Z"),
    ("timestamptz", sa.DateTime(timezone=True), "2025-03-04T02:06:07.000001-03:00"),
    ("timestamptz", sa.DateTime(timezone=True), "2024-02-29"),
    ("numeric(12,6)", sa.Numeric(12, 6), 0.1),
    ("numeric(12,6)", sa.Numeric(12, 6), "0.1"),
    ("numeric(12,6)", sa.Numeric(12, 6), 1.0000005),
    ("numeric(12,6)", sa.Numeric(12, 6), -2),
    ("numeric(12,6)", sa.Numeric(12, 6), "1.5e-3"),
    ("numeric(12,6)", sa.Numeric(12, 6), -0.0),
    ("numeric(12,6)", sa.Numeric(12, 6), -0.0000001),
    ("float8", sa.Float(), 3.0),
    ("float8", sa.Float(), 1e15),
    ("float8", sa.Float(), 123456789012345.6),
    ("float8", sa.Float(), 2.5e-5),
    ("float8", sa.Float(), -0.0),
    ("float8", sa.Float(), "61.25"),
    ("boolean", sa.Boolean(), 1),
    ("boolean", sa.Boolean(), 0),
    ("boolean", sa.Boolean(), "true"),
    ("integer", sa.Integer(), "42"),
    ("integer", sa.Integer(), 7.0),
    ("bigint", sa.BigInteger(), 2**40),
    ("uuid", postgresql.UUID(), "6F1C2D3E-4A5B-4C6D-8E7F-901A2B3C4D5E"),
    ("jsonb", postgresql.JSONB(), '{"b": 1, "a": [1.50, 1e2, -0, -0.0, 1E-7], "é": "x\\u0001"}'),
    ("jsonb", postgresql.JSONB(), '{"dup": 1, "dup": 2, "speaker": "张三", "end": 2.0}'),
    ("jsonb", postgresql.JSONB(), '"just a string"'),
    ("jsonb", postgresql.JSONB(), "[]"),
    ("varchar(8)", sa.String(8), "会议纪要🎙️"),
    ("text", sa.Text(), "tab\there\\ and\nnewline"),
]


def column(kind: sa.types.TypeEngine, nullable: bool = True) -> ColumnType:
    return column_type(sa.Column("value", kind, nullable=nullable))


@pytest.fixture(scope="module")
def postgresql_text(postgres_server: PostgresServer) -> Iterator[Callable[[str, str], str]]:
    """How PostgreSQL prints a text value cast to a type: one database for the module."""
    with postgres_server.database(f"test_values_{uuid.uuid4().hex[:12]}") as url:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("SET TimeZone = 'UTC'"))
            yield lambda pg_type, value: conn.execute(
                sa.text(f"SELECT CAST(:v AS {pg_type})::text"), {"v": value}).scalar_one()
        engine.dispose()


@pytest.mark.parametrize(("pg_type", "kind", "value"), CASES)
def test_converters_spell_values_as_postgresql_prints_them(
    postgresql_text: Callable[[str, str], str], pg_type: str, kind: sa.types.TypeEngine,
    value: object,
) -> None:
    spelled = converter_for(column(kind))(value)
    assert spelled == postgresql_text(pg_type, spelled)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (sa.DateTime(timezone=True), "2025-02-30 10:00:00", "not a valid ISO-8601 date-time"),
        (sa.DateTime(timezone=True), 1735689600, "not a date-time text"),
        (sa.Numeric(12, 6), 1234567, "too large for NUMERIC(12,6)"),
        (sa.Numeric(12, 6), "abc", "not a number"),
        (sa.Numeric(12, 6), float("nan"), "not a finite number"),
        (sa.Integer(), 2**31, "integer out of range"),
        (sa.Integer(), 1.5, "not an integer"),
        (sa.Boolean(), 2, "not a boolean"),
        (postgresql.UUID(), "task-42", "not a UUID"),
        (postgresql.JSONB(), "{'single': 'quotes'}", "malformed JSON"),
        (postgresql.JSONB(), '{"a": NaN}', "malformed JSON"),
        (postgresql.JSONB(), '{"a": "\\u0000"}', "jsonb cannot hold"),
        (postgresql.JSONB(), '"\\ud800"', "unpaired surrogate"),
        (sa.String(4), "five!", "5 characters, longer than VARCHAR(4)"),
        (sa.Text(), "a\x00b", "NUL character"),
        (sa.Text(), b"\xff\xfe", "not UTF-8"),
    ],
)
def test_converters_refuse_what_postgresql_refuses(
    kind: sa.types.TypeEngine, value: object, reason: str
) -> None:
    with pytest.raises(BadValue, match=re.escape(reason)):
        converter_for(column(kind))(value)


REFUSED = [
    (sa.Integer(), True), (sa.Integer(), 2**31), (sa.BigInteger(), 2**63), (sa.Boolean(), 1.0),
    (sa.Boolean(), True), (sa.String(4), "five!"), (sa.String(4), b"abc"), (sa.Text(), "a\x00b"),
    (postgresql.UUID(), "6F1C2D3E-4A5B-4C6D-8E7F-901A2B3C4D5E-"),
    (postgresql.JSONB(), '{"a": 1e131072}'), (postgresql.JSONB(), "[1e-16384]"),
]


@pytest.mark.parametrize(("kind", "value"),
                         [(kind, value) for _, kind, value in CASES] + REFUSED)
def test_row_converter_spells_and_refuses_as_the_column_converters(
    kind: sa.types.TypeEngine, value: object
) -> None:
    convert = converter_for(column(kind))
    row = row_converter([column(kind), column(kind, nullable=False)], "\\N")
    try:
        expected = convert(value)
    except BadValue:
        with pytest.raises(BadValue):
            row((value, value))
        return
    assert row((value, value)) == [expected, expected]
    assert row((None, value)) == ["\\N", expected]
    with pytest.raises(BadValue, match="NULL in a NOT NULL column"):
        row((value, None))


def test_jsonb_numbers_keep_every_digit(pg_engine: sa.Engine) -> None:
    document = '[12345678901234567890123456789012.5, -0.000, 1.5e-3, 2E+3, 0.10]'
    spelled = converter_for(column(postgresql.JSONB()))(document)
    with pg_engine.connect() as conn:
        printed = conn.execute(sa.text("SELECT CAST(:v AS jsonb)::text"),
                               {"v": document}).scalar_one()
    assert spelled == printed
