"""Field types: how a client value is parsed, what SQL type its parameter gets.

Every parser raises ``ValueError`` with a message safe to show the client; the document parser
turns it into a 422 naming the field and the op. Parsed values are what asyncpg encodes for the
SQL type, so a parsed value can never make the driver fail (no NUL in text, integers in range,
aware datetimes that fit after conversion to UTC).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from uuid import UUID

MAX_TEXT = 1000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: A number written as a string (the filter schema publishes the same pattern): digits, an
#: optional fraction and an exponent of at most 3 digits; at most 100 characters.
NUMERIC_PATTERN = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$"
_NUMERIC_RE = re.compile(NUMERIC_PATTERN)


class FieldType(StrEnum):
    TEXT = "text"
    INT = "int"
    BIGINT = "bigint"
    NUMERIC = "numeric"
    BOOL = "bool"
    UUID = "uuid"
    DATE = "date"
    DATETIME = "datetime"
    ENUM = "enum"
    JSON_TEXT = "json_text"


#: SQL type of the parameters of each field type (the parameter side is cast, so the planner
#: compares like with like and keeps using the column's index).
SQL_TYPES: dict[FieldType, str] = {
    FieldType.TEXT: "text",
    FieldType.INT: "int4",
    FieldType.BIGINT: "int8",
    FieldType.NUMERIC: "numeric",
    FieldType.BOOL: "bool",
    FieldType.UUID: "uuid",
    FieldType.DATE: "date",
    FieldType.DATETIME: "timestamptz",
    FieldType.ENUM: "text",
    FieldType.JSON_TEXT: "text",
}


def parse_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    if len(value) > MAX_TEXT:
        raise ValueError(f"a string has at most {MAX_TEXT} characters")
    if "\x00" in value:
        raise ValueError("a string cannot contain NUL characters")
    return value


def _int_in(bits: int) -> Callable[[Any], int]:
    """A JSON integer in the signed range of ``bits``: as in JSON Schema, ``3.0`` is the
    integer 3; a string is not an integer."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def parse(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected an integer")
        if not lo <= value <= hi:
            raise ValueError(f"integer out of range [{lo}, {hi}]")
        return value

    return parse


parse_int = _int_in(32)
parse_bigint = _int_in(64)


def parse_numeric(value: Any) -> Decimal:
    kind = type(value)
    if kind is str:
        if len(value) > 100:
            raise ValueError("a number has at most 100 characters")
        if not _NUMERIC_RE.fullmatch(value):
            raise ValueError("expected a number (digits, optional fraction and exponent)")
    elif kind is float:
        value = repr(value)
    elif kind is not int and kind is not Decimal:
        raise ValueError("expected a number")
    try:
        d = Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValueError("expected a number") from None
    # strings are at most 100 characters with a 3-digit exponent, floats short: the bound holds
    # for every value the pattern admits and keeps arithmetic on it cheap
    if not d.is_finite() or abs(d.adjusted()) > 1100:
        raise ValueError("expected a finite number of at most 1100 digits")
    return d


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


def parse_uuid(value: Any) -> UUID:
    if not isinstance(value, str) or len(value) > 45:
        raise ValueError("expected a UUID string")
    try:
        return UUID(value)
    except ValueError:
        raise ValueError("expected a UUID string") from None


def parse_date(value: Any) -> date:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("expected an ISO 8601 date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO 8601 date (YYYY-MM-DD)") from None


def parse_datetime(value: Any) -> datetime:
    """ISO 8601; a value without offset (or a bare date) is UTC."""
    if isinstance(value, datetime):  # from a cursor round trip or Python callers
        dt = value
    else:
        if not isinstance(value, str) or len(value) > 60:
            raise ValueError("expected an ISO 8601 date-time")
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("expected an ISO 8601 date-time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("date-time out of range") from None


PARSERS: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.TEXT: parse_text,
    FieldType.INT: parse_int,
    FieldType.BIGINT: parse_bigint,
    FieldType.NUMERIC: parse_numeric,
    FieldType.BOOL: parse_bool,
    FieldType.UUID: parse_uuid,
    FieldType.DATE: parse_date,
    FieldType.DATETIME: parse_datetime,
    FieldType.ENUM: parse_text,
    FieldType.JSON_TEXT: parse_text,
}


def to_json(value: Any) -> Any:
    """A parsed (or database) value as JSON, parseable back by the field's parser."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"cannot put a {type(value).__name__} in a cursor")
