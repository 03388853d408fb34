"""A deliberately small filter/sort/keyset-cursor builder for the ledger's list routes.

Stop-gap until the shared filter engine (``tenantry.capabilities.filtering`` and
``pagination``) lands on main: it accepts the same document shape (DESIGN.md §6:
``{"filters": [{"field", "op", "value"}]}``, ``sort=field`` or ``-field``, ``limit``,
``cursor``) for a whitelist of fields per list, and compiles it to parameterized SQL.
Identifiers come only from the whitelist; every value is a bind parameter.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from tenantry.modules.ledger.application.errors import InvalidQuery

OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
MAX_LIMIT = 1000


def _ts(v: Any) -> datetime:
    if not isinstance(v, str):
        raise ValueError("expected an ISO 8601 timestamp")
    return datetime.fromisoformat(v)


def _int(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("expected an integer")
    return Decimal(v)


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _uuid(v: Any) -> UUID:
    return UUID(_text(v))


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("expected true or false")
    return v


@dataclass(frozen=True, slots=True)
class Column:
    sql: str  # an expression over the list's table alias, from this module only
    parse: Callable[[Any], Any]
    pgtype: str
    sortable: bool = False
    #: A special filter (e.g. account_id on transactions): SQL with one ``{p}`` placeholder.
    template: str | None = None


@dataclass(frozen=True, slots=True)
class ListSpec:
    select: str  # "SELECT ... FROM table x" (no WHERE)
    columns: dict[str, Column]
    default_sort: str  # "created_at" or "-posted_at"


@dataclass(frozen=True, slots=True)
class ListRequest:
    filters: list[dict[str, Any]]
    sort: str | None
    limit: int
    cursor: str | None


def parse_filter_param(raw: str | None) -> list[dict[str, Any]]:
    if not raw:
        return []
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidQuery("filter is not valid JSON", "filter") from None
    filters = doc.get("filters") if isinstance(doc, dict) else None
    if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
        raise InvalidQuery('filter must be {"filters": [{"field", "op", "value"}]}', "filter")
    if len(filters) > 20:
        raise InvalidQuery("at most 20 filters", "filter")
    return filters


def _encode_cursor(value: Any, id_: UUID) -> str:
    raw = orjson.dumps([str(value) if not isinstance(value, str) else value, str(id_)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value, id_ = data
        return str(value), str(id_)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidQuery("invalid cursor", "cursor") from None


def compile_list(spec: ListSpec, req: ListRequest) -> tuple[str, list[Any], str, bool]:
    """SQL + params for one page (limit + 1 rows), the sort field and whether descending."""
    where: list[str] = []
    params: list[Any] = []

    def bind(value: Any, pgtype: str) -> str:
        params.append(value)
        return f"${len(params)}::{pgtype}"

    for f in req.filters:
        name, op, value = f.get("field"), f.get("op", "eq"), f.get("value")
        if not isinstance(name, str):
            raise InvalidQuery("each filter needs a field", "filter")
        if name.startswith("metadata.") and len(name) > 9 and op == "eq":
            where.append("x.metadata @> " + bind({name[9:]: value}, "jsonb"))
            continue
        col = spec.columns.get(name)
        if col is None:
            raise InvalidQuery(
                f"cannot filter on {name!r}; fields: {', '.join(sorted(spec.columns))}, "
                "metadata.<key> (eq)",
                "filter",
            )
        try:
            if op == "in":
                if not isinstance(value, list) or not 0 < len(value) <= 100:
                    raise ValueError("'in' takes a list of 1-100 values")
                ph = bind([col.parse(v) for v in value], col.pgtype + "[]")
                where.append(
                    col.template.format(p=f"ANY({ph})", op="=")
                    if col.template
                    else f"{col.sql} = ANY({ph})"
                )
                continue
            sql_op = OPS.get(str(op))
            if sql_op is None:
                raise ValueError(f"unknown op {op!r}; ops: in, {', '.join(OPS)}")
            ph = bind(col.parse(value), col.pgtype)
        except (ValueError, TypeError) as exc:
            raise InvalidQuery(f"filter on {name!r}: {exc}", "filter") from None
        where.append(
            col.template.format(p=ph, op=sql_op) if col.template else f"{col.sql} {sql_op} {ph}"
        )
    sort = req.sort or spec.default_sort
    desc = sort.startswith("-")
    sort_name = sort.lstrip("-+")
    sort_col = spec.columns.get(sort_name)
    if sort_col is None or not sort_col.sortable:
        sortable = sorted(n for n, c in spec.columns.items() if c.sortable)
        raise InvalidQuery(f"cannot sort by {sort_name!r}; sortable: {sortable}", "sort")
    if req.cursor:
        value, id_ = _decode_cursor(req.cursor)
        try:
            parsed = sort_col.parse(_retype(value, sort_col.pgtype))
            key_id = UUID(id_)
        except (ValueError, TypeError):
            raise InvalidQuery("invalid cursor", "cursor") from None
        cmp = "<" if desc else ">"
        where.append(
            f"({sort_col.sql}, x.id) {cmp} ({bind(parsed, sort_col.pgtype)}, "
            f"{bind(key_id, 'uuid')})"
        )
    direction = "DESC" if desc else "ASC"
    sql = spec.select
    if where:
        sql += " WHERE " + " AND ".join(where)
    limit = bind(req.limit + 1, "int")
    sql += f" ORDER BY {sort_col.sql} {direction}, x.id {direction} LIMIT {limit}"
    return sql, params, sort_name, desc


def _retype(value: str, pgtype: str) -> Any:
    """Cursor values travel as strings; give the parser what a filter value would be."""
    if pgtype == "numeric":
        return int(value)
    if pgtype == "boolean":
        return value == "True"
    return value


def next_cursor(rows: list[Any], limit: int, sort_name: str) -> str | None:
    """The cursor after the page's last row (rows hold limit + 1 when there is more)."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return _encode_cursor(last[sort_name], last["id"])
