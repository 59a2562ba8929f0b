"""Turn what SQLite really holds into the text PostgreSQL's COPY reads.

SQLite enforces no types and no lengths, so every value is checked here against the
target column: a value PostgreSQL would refuse raises :class:`BadValue` with the reason.
A good value comes back spelled exactly as PostgreSQL prints that type (with TimeZone
UTC), so a checksum of what was sent can be compared with one PostgreSQL computes over
what it stored, without reading the rows back.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

# A converter takes a non-NULL SQLite value and returns PostgreSQL's text form of it.
Converter = Callable[[object], str]

INT4 = (-(2**31), 2**31 - 1)
INT8 = (-(2**63), 2**63 - 1)


class BadValue(ValueError):
    """A value PostgreSQL would refuse; the message says why."""


@dataclass(frozen=True)
class ColumnType:
    """What the converters need to know of a target column. Plain data, so that worker
    processes can be sent it and convert rows without loading SQLAlchemy."""

    name: str
    kind: str  # uuid, jsonb, boolean, timestamptz, bigint, integer, float, numeric or text
    nullable: bool = True
    length: int | None = None  # of a VARCHAR
    precision: int = 1000  # of a NUMERIC
    scale: int = 0


def column_type(column: sa.Column) -> ColumnType:
    """The converters' view of a reflected PostgreSQL column."""
    # Imported here: this is the one function of the module that needs SQLAlchemy.
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    kind, name, nullable = column.type, column.name, bool(column.nullable)
    if isinstance(kind, postgresql.UUID | sa.Uuid):
        return ColumnType(name, "uuid", nullable)
    if isinstance(kind, postgresql.JSONB | sa.JSON):
        return ColumnType(name, "jsonb", nullable)
    if isinstance(kind, sa.Boolean):
        return ColumnType(name, "boolean", nullable)
    if isinstance(kind, sa.DateTime):
        return ColumnType(name, "timestamptz", nullable)
    if isinstance(kind, sa.BigInteger):
        return ColumnType(name, "bigint", nullable)
    if isinstance(kind, sa.Integer):
        return ColumnType(name, "integer", nullable)
    if isinstance(kind, sa.Float):  # before Numeric: Float is a Numeric subclass
        return ColumnType(name, "float", nullable)
    if isinstance(kind, sa.Numeric):
        return ColumnType(name, "numeric", nullable, precision=kind.precision or 1000,
                          scale=kind.scale or 0)
    if isinstance(kind, sa.String):
        return ColumnType(name, "text", nullable, length=kind.length)
    raise TypeError(f"no converter for {column.table.name}.{name} of type {kind}")


def _text(value: object, max_length: int | None) -> str:
    if type(value) is str and "\x00" not in value and (
            max_length is None or len(value) <= max_length):
        return value  # what SQLite nearly always holds: the text as it is
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadValue("bytes that are not UTF-8 text") from None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        raise BadValue("contains a NUL character, which PostgreSQL text cannot hold")
    if max_length is not None and len(text) > max_length:
        raise BadValue(f"{len(text)} characters, longer than VARCHAR({max_length})")
    return text


def _integer(value: object, bounds: tuple[int, int]) -> str:
    if type(value) is int and bounds[0] <= value <= bounds[1]:
        return str(value)  # what SQLite nearly always holds
    if isinstance(value, bool):
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    else:
        raise BadValue("not an integer")
    if not bounds[0] <= number <= bounds[1]:
        raise BadValue("integer out of range for the column")
    return str(number)


_TRUE = {"1", "true", "t", "yes"}
_FALSE = {"0", "false", "f", "no"}


def _boolean(value: object) -> str:
    if value in (0, 1) and not isinstance(value, float):
        return "true" if value else "false"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return "true"
        if word in _FALSE:
            return "false"
    raise BadValue("not a boolean (0/1)")


def parse_timestamp(value: object) -> datetime:
    """An ISO-8601 timestamp as UTC; naive values are UTC by the app's convention."""
    if not isinstance(value, str):
        raise BadValue("not a date-time text")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadValue("not a valid ISO-8601 date-time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# The form the app itself writes: naive UTC, space separator, optional fraction.
_APP_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?")


def _timestamptz(value: object) -> str:
    if isinstance(value, str) and _APP_TIMESTAMP.fullmatch(value):
        # Already UTC and in PostgreSQL's layout: check the date is real, then respell.
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise BadValue("not a valid ISO-8601 date-time") from None
        if len(value) == 19:
            return value + "+00"
        # PostgreSQL drops the fraction's trailing zeros, and the point with them.
        return value.rstrip("0").rstrip(".") + "+00"
    moment = parse_timestamp(value)
    # PostgreSQL's own output with TimeZone=UTC: fraction without trailing zeros.
    text = moment.isoformat(sep=" ", timespec="seconds")[:19]
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "+00"


def _numeric(value: object, precision: int, scale: int) -> str:
    if isinstance(value, bool):
        raise BadValue("not a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadValue("not a finite number")
        # repr() is the shortest text that reads back as the same float: 0.1 stays 0.1.
        value = repr(value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadValue("not a number") from None
    if not number.is_finite():
        raise BadValue("not a finite number")
    rounded = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if rounded.is_zero():
        rounded = rounded.copy_abs()  # numeric has no negative zero
    if rounded.adjusted() >= precision - scale:
        raise BadValue(f"too large for NUMERIC({precision},{scale})")
    return f"{rounded:f}"


def _float(value: object) -> str:
    if isinstance(value, bool):
        raise BadValue("not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadValue("not a number") from None
    if not math.isfinite(number):
        raise BadValue("not a finite number")
    return float8_text(number)


def float8_text(number: float) -> str:
    """PostgreSQL's text for a float8: the shortest exact digits, in exponent form below
    1e-4 or from 1e15 on, and no trailing ``.0``."""
    if number == 0:
        return "-0" if math.copysign(1, number) < 0 else "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    magnitude = len(mantissa) + int(exponent) - 1
    prefix = "-" if sign else ""
    if magnitude < -4 or magnitude >= 15:
        fraction = f".{mantissa[1:]}" if len(mantissa) > 1 else ""
        exponent_sign = "-" if magnitude < 0 else "+"
        return f"{prefix}{mantissa[0]}{fraction}e{exponent_sign}{abs(magnitude):02d}"
    return prefix + format(Decimal(repr(abs(number))).normalize(), "f")


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(value: object) -> str:
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise BadValue("not a UUID") from None


# Number literals pass through the JSON encoder as strings tagged with this character, so
# they come out in PostgreSQL's spelling rather than Python's. A real string cannot carry
# it: jsonb refuses \u0000, so such documents are findings before they get here.
_NUMBER_TAG = "\x00"
_TAGGED_NUMBER = re.compile(r'"\\u0000([^"]*)"')
# jsonb prints most literals as they are written: digits, a point and digits, no exponent,
# not a negative zero. A document whose tagged literals are all of that form only needs
# the tags taken off; any other literal is respelled by _jsonb_number.
_RESPELL_NEEDED = re.compile(
    r'"\\u0000(?!(?:-(?=[0.]*[1-9]))?(?:0|[1-9][0-9]*)\.[0-9]+")')
_LITERAL = operator.itemgetter(1)
# numeric's limits: digits before and after the decimal point.
_NUMERIC_WEIGHT, _NUMERIC_SCALE = 131072, 16383


def _jsonb_number(literal: str) -> str:
    """jsonb's spelling of a JSON number literal: its exact decimal value in positional
    notation, the literal's scale kept (2.50 stays, 1e2 is 100), -0 as 0."""
    number = Decimal(literal)
    if number.is_zero():
        number = number.copy_abs()
    elif number.adjusted() >= _NUMERIC_WEIGHT:
        raise ValueError(f"number {literal} is too large for jsonb")
    if number.as_tuple().exponent < -_NUMERIC_SCALE:  # type: ignore[operator]
        raise ValueError(f"number {literal} has too many digits after the point for jsonb")
    return format(number, "f")


def _respell(match: re.Match[str]) -> str:
    return _jsonb_number(match[1])


# Documents repeat the same objects (every segment has the same keys): how to reorder a
# key list is worked out once. Bounded, so odd documents cannot grow it without end.
_REORDERS: dict[tuple[str, ...], Callable[[list], object]] = {}
_REORDERS_KEPT = 4096
_FIRST = operator.itemgetter(0)


def _jsonb_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = tuple(map(_FIRST, pairs))
    reorder = _REORDERS.get(keys)
    if reorder is None:
        reorder = _reorder(_jsonb_key_order(keys))
        if len(_REORDERS) < _REORDERS_KEPT:
            _REORDERS[keys] = reorder
    return dict(reorder(pairs))


def _reorder(order: tuple[int, ...]) -> Callable[[list], object]:
    """The pairs at these positions, in this order, as something ``dict()`` takes."""
    if len(order) > 1:
        return operator.itemgetter(*order)
    if len(order) == 1:
        return lambda pairs: (pairs[order[0]],)
    return lambda pairs: ()


def _jsonb_key_order(keys: tuple[str, ...]) -> tuple[int, ...]:
    """Positions of the keys jsonb keeps (the last of duplicates), in jsonb's order: by
    UTF-8 length, then bytes."""
    last = {key: index for index, key in enumerate(keys)}
    spelled = {key: key.encode("utf-8", "surrogatepass") for key in last}
    return tuple(last[key] for key in sorted(last, key=lambda k: (len(spelled[k]), spelled[k])))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_JSONB_DECODER = json.JSONDecoder(object_pairs_hook=_jsonb_object, parse_float=_NUMBER_TAG.__add__,
                                  parse_constant=_refuse_constant)
_JSONB_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def jsonb_text(text: str) -> str:
    """The JSON document in ``text`` spelled exactly as PostgreSQL prints it as jsonb."""
    spelled = _JSONB_ENCODER.encode(_JSONB_DECODER.decode(text))
    if "\\u0000" not in spelled:
        return spelled
    if _RESPELL_NEEDED.search(spelled):
        return _TAGGED_NUMBER.sub(_respell, spelled)
    return _TAGGED_NUMBER.sub(_LITERAL, spelled)


# Only a \\uD800-\\uDFFF escape can put a surrogate into a decoded document.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _json(value: object) -> str:
    text = _text(value, None)
    if "\\u0000" in text:
        raise BadValue("JSON holds \\u0000, which PostgreSQL jsonb cannot hold")
    try:
        spelled = jsonb_text(text)
        if _SURROGATE_ESCAPE.search(text):
            spelled.encode("utf-8")  # refuses one not part of a pair
    except UnicodeEncodeError:
        raise BadValue("JSON holds an unpaired surrogate escape") from None
    except ValueError as exc:
        where = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise BadValue(f"malformed JSON ({getattr(exc, 'msg', exc)}{where})") from None
    return spelled


# Small documents repeat (each task's audit events carry the same details): their spelling
# is kept for the next time. Only small ones, and so many, so memory stays small.
_SMALL_DOCUMENT = 512
_cached_json = functools.lru_cache(maxsize=1024)(_json)


def _json_value(value: object) -> str:
    if type(value) is str and len(value) <= _SMALL_DOCUMENT:
        return _cached_json(value)
    return _json(value)


def converter_for(column: ColumnType) -> Converter:
    """The converter for a column."""
    kind = column.kind
    if kind == "text":
        length = column.length
        return lambda value: _text(value, length)
    if kind in ("bigint", "integer"):
        bounds = INT8 if kind == "bigint" else INT4
        return lambda value: _integer(value, bounds)
    if kind == "numeric":
        precision, scale = column.precision, column.scale
        return lambda value: _numeric(value, precision, scale)
    return {"uuid": _uuid, "jsonb": _json_value, "boolean": _boolean,
            "timestamptz": _timestamptz, "float": _float}[kind]


# A row converter takes a whole SQLite row and returns the PostgreSQL text of each value,
# NULL spelled as COPY spells it.
RowConverter = Callable[[Sequence[object]], list[str]]


def row_converter(columns: Sequence[ColumnType], null: str) -> RowConverter:
    """One function that converts a whole row of these columns, ``null`` for NULL; it
    raises :class:`BadValue` for a row with any value PostgreSQL would refuse, including
    NULL in a NOT NULL column. Each value comes out exactly as ``converter_for`` spells
    it.

    It is one function per table, written out for its columns, because the copy calls it
    for every row: each value's usual form (an int in range, a str of a fitting length, a
    canonical UUID) is taken on the spot, and only other values go to ``converter_for``'s
    converters."""
    names = [f"v{i}" for i in range(len(columns))]
    scope: dict[str, object] = {"NULL": null, "_null": _refuse_null, "str": str,
                                "int": int, "type": type}
    spelled = []
    for index, (column, name) in enumerate(zip(columns, names, strict=True)):
        convert = f"c{index}"
        scope[convert] = converter_for(column)
        usual = _usual_form(column, name, scope)
        value = f"({usual} else {convert}({name}))" if usual else f"{convert}({name})"
        if column.nullable:
            spelled.append(f"NULL if {name} is None else {value}")
        else:
            spelled.append(f"{value} if {name} is not None else _null()")
    unpack = f"{', '.join(names)}, = row"
    source = f"def convert(row):\n    {unpack}\n    return [\n        " + \
        ",\n        ".join(spelled) + ",\n    ]\n"
    exec(compile(source, "<row converter>", "exec"), scope)  # the text above, nothing else
    return scope["convert"]  # type: ignore[return-value]


def _refuse_null() -> str:
    raise BadValue("NULL in a NOT NULL column")


def _usual_form(column: ColumnType, name: str, scope: dict[str, object]) -> str | None:
    """A condition and value for the form SQLite usually holds, spelled as the column's
    converter would spell it; None when there is no shortcut."""
    kind = column.kind
    if kind == "uuid":
        scope["_canonical_uuid"] = _CANONICAL_UUID.fullmatch
        return f"{name} if type({name}) is str and _canonical_uuid({name})"
    if kind == "boolean":
        return (f"('true' if {name} == 1 else 'false') if type({name}) is int "
                f"and ({name} == 1 or {name} == 0)")
    if kind in ("bigint", "integer"):
        low, high = INT8 if kind == "bigint" else INT4
        return f"str({name}) if type({name}) is int and {low} <= {name} <= {high}"
    if kind == "text":
        fits = "" if column.length is None else f" and len({name}) <= {int(column.length)}"
        return f"{name} if type({name}) is str{fits} and '\\x00' not in {name}"
    return None
