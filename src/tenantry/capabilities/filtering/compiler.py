"""Filter tree -> parameterized SQL (``$n`` placeholders for asyncpg).

Only declared expressions, fixed keywords and ``$n`` reach the SQL text; every client value is
a parameter, cast to the field's SQL type so the planner compares like with like.

Semantics are two-valued, as a client expects: a condition on a NULL value is false (``ne``
and ``nin`` are true: NULL differs from every value), and ``not`` is a plain negation. SQL's
NULL would make ``not (x = 1)`` drop NULL rows, so inside a ``not``, conditions on nullable
fields are guarded with ``x IS NOT NULL AND ...`` (outside one, WHERE already drops NULL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tenantry.capabilities.filtering.document import And, Condition, Node, Not

_CMP = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def escape_like(value: str) -> str:
    """Escape LIKE wildcards (``%``, ``_``) and the escape character itself (``\\``)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(slots=True)
class Params:
    """Collects parameter values; ``offset`` is the number of ``$n`` already used."""

    offset: int = 0
    values: list[Any] = field(default_factory=list)

    def add(self, value: Any, sql_type: str) -> str:
        self.values.append(value)
        return f"${self.offset + len(self.values)}::{sql_type}"


def compile_node(node: Node, params: Params, negated: bool = False) -> str:
    if isinstance(node, Condition):
        return _condition(node, params, negated)
    if isinstance(node, Not):
        return f"NOT ({compile_node(node.item, params, True)})"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(compile_node(n, params, negated) for n in node.items) + ")"


def _condition(c: Condition, params: Params, negated: bool) -> str:
    f, op, v = c.field, c.op, c.value
    e, t = f.sql, f.sql_type
    if op == "is_null":
        return f"{e} IS NULL" if v else f"{e} IS NOT NULL"
    if op == "ne":
        p = params.add(v, t)
        return f"{e} IS DISTINCT FROM {p}" if f.nullable else f"{e} <> {p}"
    if op == "nin":
        p = params.add(v, t + "[]")
        return f"({e} IS NULL OR {e} <> ALL({p}))" if f.nullable else f"{e} <> ALL({p})"
    if op in _CMP:
        sql = f"{e} {_CMP[op]} {params.add(v, t)}"
    elif op == "in":
        sql = f"{e} = ANY({params.add(v, t + '[]')})"
    elif op == "between":
        sql = f"{e} BETWEEN {params.add(v[0], t)} AND {params.add(v[1], t)}"
    elif op == "contains":
        sql = f"{e} LIKE {params.add('%' + escape_like(v) + '%', 'text')}"
    elif op == "icontains":
        sql = f"{e} ILIKE {params.add('%' + escape_like(v) + '%', 'text')}"
    elif op == "startswith":
        sql = f"{e} LIKE {params.add(escape_like(v) + '%', 'text')}"
    else:  # pragma: no cover - ops are validated against ALL_OPS when fields are declared
        raise AssertionError(op)
    if negated and f.nullable:
        return f"({e} IS NOT NULL AND {sql})"
    return f"({sql})"


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A WHERE fragment (``TRUE`` when nothing is filtered) and its parameters."""

    sql: str
    params: list[Any]


def compile_filter(node: Node | None, offset: int = 0) -> CompiledFilter:
    if node is None:
        return CompiledFilter("TRUE", [])
    params = Params(offset)
    return CompiledFilter(compile_node(node, params), params.values)
