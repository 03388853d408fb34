"""Declaring filterable and sortable fields: the whitelist a module hands the engine.

A field maps a public name to a SQL expression written by the module author (never by the
client), a type and the ops it allows::

    USERS = FieldSet(
        "identity.users",
        id=fields.uuid("id", "u.id", key="user_id"),
        fields=[
            fields.text("email", "u.email", sortable=True),
            fields.enum("status", "m.status", ["active", "disabled"]),
            fields.datetime("created_at", "m.created_at", sortable=True),
            fields.json_text("metadata.customer", "m.metadata", "customer", nullable=True),
        ],
        default_sort="email",
    )

The constructors below are the public API; ``Field`` is the value they build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenantry.capabilities.filtering.types import PARSERS, SQL_TYPES, FieldType

ALL_OPS = frozenset(
    [
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "nin",
        "between",
        "contains",
        "icontains",
        "startswith",
        "is_null",
    ]
)
_ORDERED = frozenset(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "between", "is_null"])
_TEXT = frozenset(["eq", "ne", "in", "nin", "contains", "icontains", "startswith", "is_null"])
_EQUALITY = frozenset(["eq", "ne", "in", "nin", "is_null"])
DEFAULT_OPS: dict[FieldType, frozenset[str]] = {
    FieldType.TEXT: _TEXT,
    FieldType.JSON_TEXT: _TEXT,
    FieldType.INT: _ORDERED,
    FieldType.BIGINT: _ORDERED,
    FieldType.NUMERIC: _ORDERED,
    FieldType.DATE: _ORDERED,
    FieldType.DATETIME: _ORDERED,
    FieldType.BOOL: frozenset({"eq", "ne", "is_null"}),
    FieldType.UUID: _EQUALITY,
    FieldType.ENUM: _EQUALITY,
}
#: Ops that only make sense on text.
LIKE_OPS = frozenset({"contains", "icontains", "startswith"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_JSON_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,63}$")
_SQL_TYPE = re.compile(r'^[A-Za-z_][A-Za-z0-9_."]*(\[\])?$')
RESERVED = frozenset({"tenant_id"})


@dataclass(frozen=True, slots=True)
class Field:
    """One whitelisted field. ``expr`` is SQL written by the module author."""

    name: str
    expr: str
    type: FieldType
    ops: frozenset[str]
    sortable: bool = False
    nullable: bool = False
    #: The key of this field's value in a result row (for cursors); defaults to ``name``.
    key: str = ""
    values: tuple[str, ...] = ()
    #: SQL type the parameters are cast to; defaults by ``type``.
    sql_type: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name.split(".")[0] in RESERVED:
            raise ValueError(f"invalid or reserved field name {self.name!r}")
        if self.name in RESERVED or "tenant_id" in self.expr:
            raise ValueError(f"field {self.name!r}: tenant scoping is not a filterable field")
        unknown = self.ops - ALL_OPS
        if unknown:
            raise ValueError(f"field {self.name!r}: unknown ops {sorted(unknown)}")
        if self.ops & LIKE_OPS and self.type not in (FieldType.TEXT, FieldType.JSON_TEXT):
            raise ValueError(f"field {self.name!r}: LIKE ops need a text field")
        if self.type is FieldType.ENUM and not self.values:
            raise ValueError(f"enum field {self.name!r} needs values")
        if self.sql_type and not _SQL_TYPE.match(self.sql_type):
            raise ValueError(f"field {self.name!r}: invalid sql_type {self.sql_type!r}")
        if not self.key:
            object.__setattr__(self, "key", self.name)
        if not self.sql_type:
            object.__setattr__(self, "sql_type", SQL_TYPES[self.type])

    @property
    def sql(self) -> str:
        """The expression, parenthesized so operators bind as expected."""
        return f"({self.expr})"

    def parse(self, value: Any) -> Any:
        """Parse one client value to this field's type (``ValueError`` with a safe message)."""
        parsed = PARSERS[self.type](value)
        if self.type is FieldType.ENUM and parsed not in self.values:
            raise ValueError(f"expected one of {list(self.values)}")
        return parsed

    def parse_stored(self, value: Any) -> Any:
        """Parse a value that came from the database (a cursor's sort key): the type is
        checked, but not the limits put on client input (text length, enum membership)."""
        if self.type in _TEXTUAL:
            if not isinstance(value, str):
                raise ValueError("expected a string")
            return value
        return PARSERS[self.type](value)


_TEXTUAL = frozenset({FieldType.TEXT, FieldType.ENUM, FieldType.JSON_TEXT})


def _make(
    name: str,
    expr: str,
    type_: FieldType,
    ops: Iterable[str] | None,
    sortable: bool,
    nullable: bool,
    key: str | None,
    values: Sequence[str] = (),
    sql_type: str | None = None,
) -> Field:
    return Field(
        name,
        expr,
        type_,
        frozenset(ops) if ops is not None else DEFAULT_OPS[type_],
        sortable,
        nullable,
        key or "",
        tuple(values),
        sql_type or "",
    )


def _simple(type_: FieldType) -> Any:
    def make(
        name: str,
        expr: str,
        *,
        ops: Iterable[str] | None = None,
        sortable: bool = False,
        nullable: bool = False,
        key: str | None = None,
    ) -> Field:
        return _make(name, expr, type_, ops, sortable, nullable, key)

    make.__name__ = type_.value
    make.__doc__ = f"A {type_.value} field: public ``name`` -> SQL ``expr``."
    return make


text = _simple(FieldType.TEXT)
integer = _simple(FieldType.INT)
bigint = _simple(FieldType.BIGINT)
numeric = _simple(FieldType.NUMERIC)
boolean = _simple(FieldType.BOOL)
uuid = _simple(FieldType.UUID)
date = _simple(FieldType.DATE)
datetime = _simple(FieldType.DATETIME)


def enum(
    name: str,
    expr: str,
    values: Sequence[str],
    *,
    ops: Iterable[str] | None = None,
    sortable: bool = False,
    nullable: bool = False,
    key: str | None = None,
    sql_type: str | None = None,
) -> Field:
    """A text (or PostgreSQL enum, with ``sql_type``) field restricted to ``values``."""
    return _make(name, expr, FieldType.ENUM, ops, sortable, nullable, key, values, sql_type)


def json_text(
    name: str,
    column: str,
    *path: str,
    ops: Iterable[str] | None = None,
    sortable: bool = False,
    key: str | None = None,
) -> Field:
    """A text value inside a jsonb column: ``json_text("metadata.customer", "metadata",
    "customer")`` filters on ``metadata->>'customer'`` (always nullable)."""
    if not path or not all(_JSON_KEY.match(p) for p in path):
        raise ValueError(f"field {name!r}: JSON path keys must match {_JSON_KEY.pattern}")
    *inner, last = path
    expr = column + "".join(f"->'{p}'" for p in inner) + f"->>'{last}'"
    return _make(name, expr, FieldType.JSON_TEXT, ops, sortable, True, key)


@dataclass(frozen=True, slots=True)
class SortKey:
    field: Field
    desc: bool = False

    @property
    def spec(self) -> str:
        return ("-" if self.desc else "") + self.field.name


@dataclass(slots=True)
class FieldSet:
    """The fields of one list endpoint, its row id (the keyset tie-breaker) and default sort."""

    name: str
    id: Field
    fields: Sequence[Field]
    default_sort: str = ""
    by_name: dict[str, Field] = field(init=False)

    def __post_init__(self) -> None:
        if self.id.nullable:
            raise ValueError("the id field cannot be nullable")
        self.by_name = {}
        for f in self.fields:
            if f.name in self.by_name:
                raise ValueError(f"field {f.name!r} declared twice")
            self.by_name[f.name] = f
        if self.id.name not in self.by_name:
            self.by_name[self.id.name] = self.id

    def get(self, name: Any) -> Field | None:
        return self.by_name.get(name) if isinstance(name, str) else None
