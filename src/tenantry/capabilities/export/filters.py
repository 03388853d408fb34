"""Export filters through the shared filter engine (``tenantry.capabilities.filtering``).

A source's columns become a ``FieldSet`` (each column a field whose SQL expression is
``src."<column>"``, every column sortable, filterable ones with the engine's default operators
for their type), so an export accepts exactly the filter document the list endpoints accept
(docs/architecture.md, API conventions), with the same validation (422 naming the place) and
the same semantics::

    {"filters": [{"field": "created_at", "op": "gte", "value": "2026-01-01"}],
     "sort": {"field": "created_at", "dir": "desc"}}

The source's ``order_by`` columns are appended to any requested sort so the order is total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenantry.capabilities.export.sources import Column, Source
from tenantry.capabilities.filtering import Field, FieldSet, FieldType, fields, parse_sort
from tenantry.capabilities.filtering import compile_document as compile_engine
from tenantry.kernel.errors import ValidationFailed

_TYPES: dict[str, FieldType] = {
    "text": FieldType.TEXT,
    "int": FieldType.BIGINT,
    "float": FieldType.NUMERIC,
    "numeric": FieldType.NUMERIC,
    "bool": FieldType.BOOL,
    "uuid": FieldType.UUID,
    "timestamptz": FieldType.DATETIME,
    "date": FieldType.DATE,
}
_FIELDSETS: dict[str, FieldSet] = {}


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    where: str  # "" or "WHERE ..." using src."col" and $n placeholders
    params: list[Any]
    order_by: str  # "ORDER BY ..."


def q(name: str) -> str:
    return 'src."' + name + '"'


def _field(c: Column, key: str) -> Field:
    t = _TYPES[c.type]
    return Field(
        name=c.name,
        expr=q(c.name),
        type=t,
        ops=fields.DEFAULT_OPS[t] if c.filterable else frozenset(),
        sortable=True,
        nullable=c.name != key,  # the source's unique key (last order_by column) is NOT NULL
        sql_type="double precision" if c.type == "float" else "",
    )


def fieldset(source: Source) -> FieldSet:
    fs = _FIELDSETS.get(source.name)
    if fs is None:
        cols = [_field(c, source.order_by[-1]) for c in source.columns]
        by = {f.name: f for f in cols}
        fs = FieldSet(source.name, by[source.order_by[-1]], cols, source.order_by[0])
        _FIELDSETS[source.name] = fs
    return fs


def compile_filters(
    doc: dict[str, Any] | None, source: Source, first_param: int = 1
) -> CompiledFilter:
    """Validate ``doc`` against ``source`` and compile it; ValidationFailed (422) if invalid."""
    doc = doc or {}
    if not isinstance(doc, dict):
        raise ValidationFailed(
            "the filter document is a JSON object", errors=[{"field": "filters"}]
        )
    fs = fieldset(source)
    compiled = compile_engine(fs, doc, offset=first_param - 1)
    keys = parse_sort(doc.get("sort"), fs)
    seen = {k.field.name for k in keys}
    order = [f"{k.field.sql} {'DESC' if k.desc else 'ASC'}" for k in keys]
    order += [f"{q(c)} ASC" for c in source.order_by if c not in seen]
    where = "" if compiled.sql == "TRUE" else f"WHERE {compiled.sql}"
    return CompiledFilter(where, list(compiled.params), "ORDER BY " + ", ".join(order))


def select_sql(source: Source, columns: list[str], f: CompiledFilter) -> str:
    """The export's query: declared columns only, over the source's query, filtered, ordered."""
    cols = ", ".join(q(c) for c in columns)
    return f"SELECT {cols} FROM ({source.query}) AS src {f.where} {f.order_by}"


def count_sql(source: Source, f: CompiledFilter) -> str:
    return f"SELECT count(*) FROM ({source.query}) AS src {f.where}"
