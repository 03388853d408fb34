"""The JSON filter document, parsed and validated into a small tree.

Document (docs/architecture.md, API conventions)::

    {"filters": [{"field": "created_at", "op": "gte", "value": "2026-01-01"},
                 {"or": [{"field": "status", "op": "eq", "value": "active"},
                         {"not": {"field": "email", "op": "contains", "value": "test"}}]}],
     "sort": {"field": "created_at", "dir": "desc"}}

``filters`` is an implicit AND. Every problem is a 422 (``ValidationFailed``) whose errors name
the place in the document (``filters[1].or[0]``), the field and the op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenantry.capabilities.filtering.fields import Field, FieldSet, SortKey
from tenantry.kernel.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class Limits:
    max_conditions: int = 1000
    max_depth: int = 32
    max_in: int = 200
    max_sort: int = 4


DEFAULT_LIMITS = Limits()


# The tree's nodes are not frozen only because frozen dataclasses are 3x slower to build
# (this is the hot path of every list request); nothing mutates them after parsing.
@dataclass(slots=True)
class Condition:
    field: Field
    op: str
    #: Parsed: a scalar, a list (in/nin), a pair (between) or a bool (is_null).
    value: Any


@dataclass(slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(slots=True)
class Not:
    item: Node


Node = Condition | And | Or | Not
_DOC_KEYS = frozenset({"filters", "and", "or", "not", "sort"})
_COND_KEYS = frozenset({"field", "op", "value"})


def fail(where: str, message: str, *, field: Any = None, op: Any = None) -> ValidationFailed:
    """A 422 naming the place in the document and, when known, the field and the op."""
    err: dict[str, Any] = {"field": where, "message": message}
    named: list[str] = []
    if isinstance(field, str):
        err["filter_field"] = field[:100]
        named.append(f"field {field[:100]!r}")
    if isinstance(op, str):
        err["op"] = op[:30]
        named.append(f"op {op[:30]!r}")
    about = f" ({', '.join(named)})" if named else ""
    return ValidationFailed(f"invalid filter at {where}{about}: {message}", errors=[err])


class _Parser:
    def __init__(self, fields: FieldSet, limits: Limits) -> None:
        self.fields = fields
        self.limits = limits
        self.count = 0

    def nodes(self, items: Any, where: str, depth: int) -> tuple[Node, ...]:
        if not isinstance(items, list):
            raise fail(where, "expected a list of conditions")
        if not items:
            raise fail(where, "expected at least one condition")
        return tuple(self.node(item, f"{where}[{i}]", depth) for i, item in enumerate(items))

    def node(self, obj: Any, where: str, depth: int) -> Node:
        if depth > self.limits.max_depth:
            raise fail(where, f"nesting deeper than {self.limits.max_depth} levels")
        if not isinstance(obj, dict):
            raise fail(where, "expected an object")
        if len(obj) == 1 and "and" in obj:
            return And(self.nodes(obj["and"], f"{where}.and", depth + 1))
        if len(obj) == 1 and "or" in obj:
            return Or(self.nodes(obj["or"], f"{where}.or", depth + 1))
        if len(obj) == 1 and "not" in obj:
            return Not(self.node(obj["not"], f"{where}.not", depth + 1))
        return self.condition(obj, where)

    def condition(self, obj: dict[str, Any], where: str) -> Condition:
        name, op = obj.get("field"), obj.get("op")
        if not obj.keys() <= _COND_KEYS or "field" not in obj or "op" not in obj:
            raise fail(
                where,
                "expected {field, op, value} or one of and/or/not",
                field=name,
                op=op,
            )
        self.count += 1
        if self.count > self.limits.max_conditions:
            raise fail(where, f"more than {self.limits.max_conditions} conditions")
        f = self.fields.get(name)
        if f is None:
            raise fail(where, "unknown field", field=name, op=op)
        if not isinstance(op, str) or op not in f.ops:
            raise fail(where, f"op not allowed; allowed: {sorted(f.ops)}", field=name, op=op)
        assert isinstance(name, str)
        try:
            return Condition(f, op, self.value(f, op, obj))
        except ValueError as exc:
            raise fail(f"{where}.value", str(exc), field=name, op=op) from None

    def value(self, f: Field, op: str, obj: dict[str, Any]) -> Any:
        if op == "is_null":
            v = obj.get("value", True)
            if not isinstance(v, bool):
                raise ValueError("is_null takes true or false")
            return v
        if "value" not in obj:
            raise ValueError("a value is required")
        v = obj["value"]
        if op in ("in", "nin"):
            if not isinstance(v, list) or not v:
                raise ValueError("expected a non-empty list")
            if len(v) > self.limits.max_in:
                raise ValueError(f"at most {self.limits.max_in} values")
            return [self.scalar(f, x) for x in v]
        if op == "between":
            if not isinstance(v, list) or len(v) != 2:
                raise ValueError("expected [low, high]")
            return (self.scalar(f, v[0]), self.scalar(f, v[1]))
        return self.scalar(f, v)

    @staticmethod
    def scalar(f: Field, v: Any) -> Any:
        if v is None:
            raise ValueError("null is not a value; use the is_null op")
        return f.parse(v)


def canonical(node: Node | None) -> Any:
    """A JSON-able form of a parsed tree (values already typed): equal for documents that
    mean the same, e.g. ``"2026-01-01"`` and ``"2026-01-01T00:00:00Z"`` on a datetime."""
    if node is None:
        return None
    if isinstance(node, Condition):
        return (node.field.name, node.op, node.value)
    if isinstance(node, Not):
        return ("not", canonical(node.item))
    return ("and" if isinstance(node, And) else "or", [canonical(n) for n in node.items])


def parse_filter(doc: Any, fields: FieldSet, limits: Limits = DEFAULT_LIMITS) -> Node | None:
    """The filter part of a document (``filters``/``and``/``or``/``not``) as one tree.

    A bare list is taken as ``filters``; ``None`` or an empty document filters nothing.
    """
    if doc is None:
        return None
    if isinstance(doc, list):
        doc = {"filters": doc}
    if not isinstance(doc, dict):
        raise fail("filter", "expected a JSON object")
    unknown = set(doc) - _DOC_KEYS
    if unknown:
        raise fail("filter", f"unknown keys {sorted(str(k)[:30] for k in unknown)[:5]}")
    p = _Parser(fields, limits)
    parts: list[Node] = []
    if "filters" in doc:
        items = doc["filters"]
        if isinstance(items, list) and not items:
            items = None
        if items is not None:
            parts.extend(p.nodes(items, "filters", 1))
    for key in ("and", "or", "not"):
        if key in doc:
            parts.append(p.node({key: doc[key]}, "filter", 1))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def parse_sort(spec: Any, fields: FieldSet, limits: Limits = DEFAULT_LIMITS) -> list[SortKey]:
    """``"email,-created_at"``, ``{"field": f, "dir": "asc"|"desc"}`` or a list of those.

    A field named again is ignored (its first mention decides): a rule a schema can check
    for no client, so it is not an error."""
    if spec is None or spec == "":
        return []
    items: list[Any]
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(",")]
    elif isinstance(spec, dict):
        items = [spec]
    elif isinstance(spec, list):
        items = spec
    else:
        raise fail("sort", "expected 'field,-other' or {field, dir}")
    if len(items) > limits.max_sort:
        raise fail("sort", f"at most {limits.max_sort} sort fields")
    keys: list[SortKey] = []
    for i, item in enumerate(items):
        where = f"sort[{i}]"
        if isinstance(item, str):
            item = item.strip()
            desc = item.startswith("-")
            name: Any = item[1:] if desc or item.startswith("+") else item
        elif isinstance(item, dict) and set(item) <= {"field", "dir"} and "field" in item:
            name, direction = item["field"], item.get("dir", "asc")
            if direction not in ("asc", "desc"):
                raise fail(where, "dir is 'asc' or 'desc'", field=name)
            desc = direction == "desc"
        else:
            raise fail(where, "expected 'field', '-field' or {field, dir}")
        f = fields.get(name)
        if f is None or not (f.sortable or f is fields.id):
            raise fail(where, "not a sortable field", field=name if isinstance(name, str) else None)
        if any(k.field is f for k in keys):
            continue  # a field sorted again adds nothing: its first mention decides
        keys.append(SortKey(f, desc))
    return keys
