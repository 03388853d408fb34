"""ABAC conditions: a small JSON language over principal and resource attributes.

    {"all": [{"attr": "resource.amount", "op": "lt", "value": 10000},
             {"attr": "resource.department", "op": "eq", "ref": "principal.department"}]}

Nodes: ``all``/``any`` (lists), ``not`` (one node), and leaves ``{attr, op, value | ref}``
with ops ``eq ne lt lte gt gte in contains exists``. ``attr``/``ref`` are dotted paths into
``{"principal": {...}, "resource": {...}, "action": "..."}``. A missing attribute makes a
comparison false (so an allow never matches on absent data). Pure Python, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPS = frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "exists"})
ROOTS = frozenset({"principal", "resource", "action"})
#: Bounds on one condition (each decision walks it): deep and large enough that no condition
#: a schema-driven generator writes reaches them, small enough to keep a decision cheap.
MAX_DEPTH = 32
MAX_NODES = 1000
PATH_PATTERN = r"^(?:principal|resource|action)(?:\.[^\x00]*)?$"


def condition_schemas() -> dict[str, dict[str, Any]]:
    """The OpenAPI components of the condition language (``AuthzCondition``)."""
    node = {"$ref": "#/components/schemas/AuthzCondition"}
    path = {"type": "string", "pattern": PATH_PATTERN, "maxLength": 200}
    compare = sorted(OPS - {"exists", "in"})

    def obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": False,
        }

    many = {"type": "array", "items": node, "minItems": 1}
    return {
        "AuthzCondition": {
            "description": "all/any (non-empty lists), not, or a leaf {attr, op, value | ref} "
            f"(paths under principal., resource. or action); at most {MAX_NODES} nodes and "
            f"{MAX_DEPTH} levels.",
            "anyOf": [
                obj({"all": many}, ["all"]),
                obj({"any": many}, ["any"]),
                obj({"not": node}, ["not"]),
                obj(
                    {"attr": path, "op": {"const": "exists"}, "value": {}, "ref": {}},
                    ["attr", "op"],
                ),
                obj(
                    {"attr": path, "op": {"enum": [*compare, "in"]}, "ref": path},
                    ["attr", "op", "ref"],
                ),
                obj(
                    {"attr": path, "op": {"const": "in"}, "value": {"type": "array"}},
                    ["attr", "op", "value"],
                ),
                obj({"attr": path, "op": {"enum": compare}, "value": {}}, ["attr", "op", "value"]),
            ],
        }
    }


_MISSING = object()


class ConditionError(ValueError):
    """The condition is malformed; ``path`` says where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def validate(
    node: Any, path: str = "condition", depth: int = 0, count: list[int] | None = None
) -> None:
    count = count if count is not None else [0]
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ConditionError(path, f"more than {MAX_NODES} nodes")
    if depth > MAX_DEPTH:
        raise ConditionError(path, f"nested deeper than {MAX_DEPTH}")
    if not isinstance(node, Mapping):
        raise ConditionError(path, "must be an object")
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        items = node[key]
        if len(node) != 1 or not isinstance(items, list) or not items:
            raise ConditionError(path, f"{key!r} takes a non-empty list and nothing else")
        for i, child in enumerate(items):
            validate(child, f"{path}.{key}[{i}]", depth + 1, count)
        return
    if "not" in node:
        if len(node) != 1:
            raise ConditionError(path, "'not' takes one condition and nothing else")
        validate(node["not"], f"{path}.not", depth + 1, count)
        return
    extra = set(node) - {"attr", "op", "value", "ref"}
    if extra:
        raise ConditionError(path, f"unknown keys {sorted(extra)}")
    _check_path(node.get("attr"), f"{path}.attr")
    op = node.get("op")
    if not isinstance(op, str) or op not in OPS:  # an object is unhashable: not ``in`` a set
        raise ConditionError(f"{path}.op", f"must be one of {sorted(OPS)}")
    if op == "exists":
        return
    if ("value" in node) == ("ref" in node):
        raise ConditionError(path, "give exactly one of 'value' or 'ref'")
    if "ref" in node:
        _check_path(node["ref"], f"{path}.ref")
    elif op == "in" and not isinstance(node["value"], list):
        raise ConditionError(f"{path}.value", "'in' takes a list")


def _check_path(p: Any, where: str) -> None:
    if not isinstance(p, str) or p.split(".", 1)[0] not in ROOTS:
        raise ConditionError(where, "must be a path starting with principal., resource. or action")


def lookup(ctx: Mapping[str, Any], path: str) -> Any:
    cur: Any = ctx
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _compare(op: str, left: Any, right: Any) -> bool:
    try:
        if op == "eq":
            return bool(left == right)
        if op == "ne":
            return bool(left != right)
        if op == "lt":
            return bool(left < right)
        if op == "lte":
            return bool(left <= right)
        if op == "gt":
            return bool(left > right)
        if op == "gte":
            return bool(left >= right)
        if op == "in":
            return left in right
        if op == "contains":
            return right in left
    except TypeError:
        return False  # e.g. "10" < 5: incomparable types never match
    return False


def evaluate(node: Mapping[str, Any], ctx: Mapping[str, Any]) -> bool:
    if "all" in node:
        return all(evaluate(c, ctx) for c in node["all"])
    if "any" in node:
        return any(evaluate(c, ctx) for c in node["any"])
    if "not" in node:
        return not evaluate(node["not"], ctx)
    left = lookup(ctx, node["attr"])
    op = node["op"]
    if op == "exists":
        return left is not _MISSING
    right = lookup(ctx, node["ref"]) if "ref" in node else node["value"]
    if left is _MISSING or right is _MISSING:
        return False
    return _compare(op, left, right)
