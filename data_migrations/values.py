"""Turn what SQLite really holds into the text PostgreSQL's COPY reads.

SQLite enforces no types and no lengths, so every value is checked here against the
target column: a value PostgreSQL would refuse raises :class:`BadValue` with the reason.
A good value comes back spelled exactly as PostgreSQL prints that type (with TimeZone
UTC), so a checksum of what was sent can be compared with one PostgreSQL computes over
what it stored, without reading the rows back.
"""

from __future__ import annotations

import json
import math
import re
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


# The form the app itself writes: naive UTC, space separator, optional fraction.
_APP_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?")


def _timestamptz(value: object) -> str:
    if isinstance(value, str) and _APP_TIMESTAMP.fullmatch(value):
        # Already UTC and in PostgreSQL's layout: check the date is real, then respell.
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise BadValue("not a valid ISO-8601 date-time") from None
        whole, _, fraction = value.partition(".")
        fraction = fraction.rstrip("0")
        return f"{whole}.{fraction}+00" if fraction else f"{whole}+00"
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


def _jsonb_number(literal: str) -> str:
    # Adding 0 turns -0 into 0, as jsonb does; the literal's scale is kept (2.50 stays).
    return _NUMBER_TAG + format(Decimal(literal) + 0, "f")


# Documents repeat the same objects (every segment has the same keys): the order of a
# key list is worked out once. Bounded, so odd documents cannot grow it without end.
_KEY_ORDERS: dict[tuple[str, ...], tuple[int, ...]] = {}
_KEY_ORDERS_KEPT = 4096


def _jsonb_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = tuple(key for key, _ in pairs)
    order = _KEY_ORDERS.get(keys)
    if order is None:
        order = _jsonb_key_order(keys)
        if len(_KEY_ORDERS) < _KEY_ORDERS_KEPT:
            _KEY_ORDERS[keys] = order
    return {pairs[i][0]: pairs[i][1] for i in order}


def _jsonb_key_order(keys: tuple[str, ...]) -> tuple[int, ...]:
    """Positions of the keys jsonb keeps (the last of duplicates), in jsonb's order: by
    UTF-8 length, then bytes."""
    last = {key: index for index, key in enumerate(keys)}
    spelled = {key: key.encode("utf-8", "surrogatepass") for key in last}
    return tuple(last[key] for key in sorted(last, key=lambda k: (len(spelled[k]), spelled[k])))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_JSONB_DECODER = json.JSONDecoder(object_pairs_hook=_jsonb_object, parse_float=_jsonb_number,
                                  parse_constant=_refuse_constant)
_JSONB_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def jsonb_text(text: str) -> str:
    """The JSON document in ``text`` spelled exactly as PostgreSQL prints it as jsonb."""
    spelled = _JSONB_ENCODER.encode(_JSONB_DECODER.decode(text))
    if "\\u0000" not in spelled:
        return spelled
    return _TAGGED_NUMBER.sub(_untag, spelled)


def _untag(match: re.Match[str]) -> str:
    return match[1]


def _json(value: object) -> str:
    text = _text(value, None)
    if "\\u0000" in text:
        raise BadValue("JSON holds \\u0000, which PostgreSQL jsonb cannot hold")
    try:
        spelled = jsonb_text(text)
        spelled.encode("utf-8")
    except UnicodeEncodeError:
        raise BadValue("JSON holds an unpaired surrogate escape") from None
    except ValueError as exc:
        where = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise BadValue(f"malformed JSON ({getattr(exc, 'msg', exc)}{where})") from None
    return spelled


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
