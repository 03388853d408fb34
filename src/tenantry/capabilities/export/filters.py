"""Export filters: the DESIGN.md §6 filter document compiled to a parameterized WHERE clause.

**Interim.** The shared filter engine (``tenantry.capabilities.filtering``) is being built on
another branch; until it lands, this module accepts a validated subset of the same document
behind one function, ``compile_filters``, which is the only thing to swap::

    {"filters": [{"field": "created_at", "op": "gte", "value": "2026-01-01"},
                 {"field": "status", "op": "in", "value": ["active", "trial"]}],
     "sort": {"field": "created_at", "dir": "desc"}}

Operators: eq ne gt gte lt lte in nin contains icontains is_null. Fields are the source's
declared filterable columns (the only identifiers that reach SQL, always quoted); values are
always bind parameters, cast to the column's type (so a bad value is a 422 from PostgreSQL's
own parser, turned into a problem by the caller). Filters are AND-ed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from tenantry.capabilities.export.sources import Column, Source
from tenantry.kernel.errors import ValidationFailed

PG_TYPE = {
    "text": "text",
    "int": "bigint",
    "float": "double precision",
    "numeric": "numeric",
    "bool": "boolean",
    "uuid": "uuid",
    "timestamptz": "timestamptz",
    "date": "date",
}
_CMP = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
OPS = (*_CMP, "in", "nin", "contains", "icontains", "is_null")
MAX_FILTERS = 50
MAX_LIST = 1000


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    where: str  # "" or "WHERE ..." using src."col" and $n placeholders
    params: list[Any]
    order_by: str  # "ORDER BY ..."


def q(name: str) -> str:
    return 'src."' + name + '"'


def _bad(msg: str, field: str = "filters") -> ValidationFailed:
    return ValidationFailed(msg, errors=[{"field": field, "message": msg}])


def _convert(value: Any, col: Column, field: str) -> Any:
    """The filter value as the Python type asyncpg encodes for the column's PostgreSQL type."""
    try:
        if isinstance(value, list | dict) or value is None:
            raise ValueError("must be a string, number or boolean")
        t = col.type
        if t == "text":
            return str(value)
        if t == "bool":
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if isinstance(value, bool):
            raise ValueError(f"must be a {t}")
        if t == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("must be an integer")
            return int(value)
        if t == "float":
            return float(value)
        if t == "numeric":
            return Decimal(str(value))
        if t == "uuid":
            return UUID(str(value))
        if t == "date":
            return date.fromisoformat(str(value))
        dt = datetime.fromisoformat(str(value))
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    except (ValueError, TypeError, ArithmeticError) as exc:
        msg = f"filter on {field!r}: {value!r} is not a valid {col.type} ({exc})"
        raise _bad(msg, field) from None


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def compile_filters(
    doc: dict[str, Any] | None, source: Source, first_param: int = 1
) -> CompiledFilter:
    """Validate ``doc`` against ``source`` and compile it; ValidationFailed (422) if invalid."""
    doc = doc or {}
    if not isinstance(doc, dict) or set(doc) - {"filters", "sort"}:
        raise _bad("the filter document has only 'filters' and 'sort'")
    items = doc.get("filters") or []
    if not isinstance(items, list) or len(items) > MAX_FILTERS:
        raise _bad(f"'filters' must be a list of at most {MAX_FILTERS} conditions")
    clauses: list[str] = []
    params: list[Any] = []

    def param(value: Any, cast: str) -> str:
        params.append(value)
        return f"${first_param + len(params) - 1}::{cast}"

    for i, item in enumerate(items):
        where = f"filters[{i}]"
        if not isinstance(item, dict) or set(item) - {"field", "op", "value"}:
            raise _bad(f"{where}: a condition is {{field, op, value}}", where)
        field, op, value = str(item.get("field")), item.get("op"), item.get("value")
        col = source.by_name.get(field) if isinstance(field, str) else None
        if col is None or not col.filterable:
            raise _bad(f"{where}: {field!r} is not a filterable column of {source.name}", where)
        if op not in OPS:
            raise _bad(f"{where}: unknown operator {op!r} (one of {', '.join(OPS)})", where)
        cast = PG_TYPE[col.type]
        if op in _CMP:
            clauses.append(f"{q(col.name)} {_CMP[op]} {param(_convert(value, col, field), cast)}")
        elif op in ("in", "nin"):
            if not isinstance(value, list) or not value or len(value) > MAX_LIST:
                raise _bad(f"{where}: '{op}' takes a non-empty list (at most {MAX_LIST})", where)
            vals = [_convert(v, col, field) for v in value]
            expr = f"{q(col.name)} = ANY({param(vals, cast + '[]')})"
            clauses.append(expr if op == "in" else f"NOT ({expr})")
        elif op in ("contains", "icontains"):
            if col.type != "text" or not isinstance(value, str):
                raise _bad(f"{where}: '{op}' applies to text columns with a string value", where)
            like = "LIKE" if op == "contains" else "ILIKE"
            clauses.append(f"{q(col.name)} {like} {param(_like(value), 'text')}")
        else:  # is_null
            if not isinstance(value, bool):
                raise _bad(f"{where}: 'is_null' takes true or false", where)
            clauses.append(f"{q(col.name)} IS {'' if value else 'NOT '}NULL")
    order = list(source.order_by)
    sort = doc.get("sort")
    keys: list[str] = []
    if sort is not None:
        if not isinstance(sort, dict) or set(sort) - {"field", "dir"}:
            raise _bad("'sort' is {field, dir}", "sort")
        sort_field, direction = sort.get("field"), sort.get("dir", "asc")
        if not isinstance(sort_field, str) or sort_field not in source.by_name:
            raise _bad(f"sort: {sort_field!r} is not a column of {source.name}", "sort")
        if direction not in ("asc", "desc"):
            raise _bad("sort: dir is 'asc' or 'desc'", "sort")
        keys.append(f"{q(sort_field)} {direction.upper()}")
        order = [k for k in order if k != sort_field]
    keys += [f"{q(k)} ASC" for k in order]
    return CompiledFilter(
        "WHERE " + " AND ".join(clauses) if clauses else "", params, "ORDER BY " + ", ".join(keys)
    )


def select_sql(source: Source, columns: list[str], f: CompiledFilter) -> str:
    """The export's query: declared columns only, over the source's query, filtered, ordered."""
    cols = ", ".join(q(c) for c in columns)
    return f"SELECT {cols} FROM ({source.query}) AS src {f.where} {f.order_by}"


def count_sql(source: Source, f: CompiledFilter) -> str:
    return f"SELECT count(*) FROM ({source.query}) AS src {f.where}"
