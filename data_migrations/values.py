"""Turn what SQLite really holds into the text PostgreSQL's COPY reads.

SQLite enforces no types and no lengths, so every value is checked here against the
target column: a value PostgreSQL would refuse raises :class:`BadValue` with the reason,
and a good value comes back in the exact text form PostgreSQL prints for that type, so
the checksum of what was sent can be compared with the checksum of what was stored.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# A converter takes a non-NULL SQLite value and returns PostgreSQL's text form of it.
Converter = Callable[[object], str]

INT4 = (-(2**31), 2**31 - 1)
INT8 = (-(2**63), 2**63 - 1)


class BadValue(ValueError):
    """A value PostgreSQL would refuse; the message says why."""


def _text(value: object, max_length: int | None) -> str:
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


def _timestamptz(value: object) -> str:
    moment = parse_timestamp(value)
    # PostgreSQL's own output with TimeZone=UTC: fraction without trailing zeros.
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
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
    return repr(number)


def _uuid(value: object) -> str:
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise BadValue("not a UUID") from None


def _json(value: object) -> str:
    text = _text(value, None)
    try:
        json.loads(text)
    except ValueError as exc:
        raise BadValue(f"malformed JSON ({exc.msg} at character {exc.pos})") from None
    if "\\u0000" in text:
        raise BadValue("JSON holds \\u0000, which PostgreSQL jsonb cannot hold")
    return text


def converter_for(column: sa.Column) -> Converter:
    """The converter for a reflected PostgreSQL column."""
    kind = column.type
    if isinstance(kind, postgresql.UUID | sa.Uuid):
        return _uuid
    if isinstance(kind, postgresql.JSONB | sa.JSON):
        return _json
    if isinstance(kind, sa.Boolean):
        return _boolean
    if isinstance(kind, sa.DateTime):
        return _timestamptz
    if isinstance(kind, sa.BigInteger):
        return lambda value: _integer(value, INT8)
    if isinstance(kind, sa.Integer):
        return lambda value: _integer(value, INT4)
    if isinstance(kind, sa.Float):  # before Numeric: Float is a Numeric subclass
        return _float
    if isinstance(kind, sa.Numeric):
        precision, scale = kind.precision or 1000, kind.scale or 0
        return lambda value: _numeric(value, precision, scale)
    if isinstance(kind, sa.String):
        length = kind.length
        return lambda value: _text(value, length)
    raise TypeError(f"no converter for {column.table.name}.{column.name} of type {kind}")


def normalizer_for(column: sa.Column) -> Callable[[str], str] | None:
    """How to compare a column's text as sent with its text as PostgreSQL prints it;
    None where the converter already sends PostgreSQL's own text form."""
    if isinstance(column.type, postgresql.JSONB | sa.JSON):
        return canonical_json
    if isinstance(column.type, sa.Float):
        return lambda text: repr(float(text))
    return None


def _plain_number(number: Decimal) -> str:
    # Adding 0 turns -0 into 0, as jsonb does.
    return f"{number.normalize() + 0:f}"


def canonical_json(text: str) -> str:
    """One text for equal JSON documents: keys sorted, numbers by value, no spacing."""
    document = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=_plain_number)
