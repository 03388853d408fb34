"""JSON Schemas of a list's filter document and sort, generated from its ``FieldSet``.

The OpenAPI document describes each list's ``filter`` (and ``POST .../search`` body) with these,
so a client, a code generator or a fuzzer knows the fields, the ops each allows and the value
each op takes, exactly as ``document.parse_filter`` and ``parse_sort`` check them::

    schemas = document_schemas(USERS, DEFAULT_LIMITS)   # component name -> schema
    ref = {"$ref": f"#/components/schemas/{filter_name(USERS)}"}

What a schema cannot say (at most ``max_conditions`` conditions in the whole tree, at most
``max_depth`` levels) is in the descriptions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tenantry.capabilities.filtering.document import Limits
from tenantry.capabilities.filtering.fields import Field, FieldSet
from tenantry.capabilities.filtering.types import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    MAX_TEXT,
    NUMERIC_PATTERN,
    FieldType,
)

_SCALAR_OPS = frozenset(
    {"eq", "ne", "gt", "gte", "lt", "lte", "contains", "icontains", "startswith"}
)

#: The input guard's string rule (kernel.http.openapi.NO_NUL), restated: the filter engine
#: imports nothing of the web layer (import-linter contract).
NO_NUL = "^[^\\u0000]*$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _prefix(fieldset: FieldSet, kind: str = "Filter") -> str:
    return f"{kind}." + re.sub(r"[^A-Za-z0-9_.-]", "_", fieldset.name)


def filter_name(fieldset: FieldSet, kind: str = "Filter") -> str:
    """Component name of the filter document of ``fieldset`` (an object, or a bare list of
    conditions); ``+ ".Document"``: the object form only."""
    return _prefix(fieldset, kind)


def search_name(fieldset: FieldSet) -> str:
    """Component name of the ``POST .../search`` body of ``fieldset``."""
    return _prefix(fieldset) + ".Search"


def scalar_schema(f: Field) -> dict[str, Any]:
    """The values ``f.parse`` accepts."""
    t = f.type
    if t is FieldType.ENUM:
        return {"type": "string", "enum": list(f.values)}
    if t in (FieldType.TEXT, FieldType.JSON_TEXT):
        return {"type": "string", "maxLength": MAX_TEXT, "pattern": NO_NUL}
    if t is FieldType.INT:
        return {"type": "integer", "minimum": INT32_MIN, "maximum": INT32_MAX}
    if t is FieldType.BIGINT:
        return {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
    if t is FieldType.NUMERIC:
        return {
            "anyOf": [
                {"type": "number", "minimum": INT64_MIN, "maximum": INT64_MAX},
                {"type": "string", "pattern": NUMERIC_PATTERN, "maxLength": 100},
            ]
        }
    if t is FieldType.BOOL:
        return {"type": "boolean"}
    if t is FieldType.UUID:
        return {"type": "string", "format": "uuid"}
    if t is FieldType.DATE:
        return {"type": "string", "format": "date"}
    return {"type": "string", "format": "date-time"}


def _condition(f: Field, ops: list[str], value: dict[str, Any] | None) -> dict[str, Any]:
    props: dict[str, Any] = {"field": {"const": f.name}, "op": {"enum": ops}}
    required = ["field", "op"]
    if value is not None:
        props["value"] = value
        required.append("value")
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def condition_schemas(f: Field, limits: Limits) -> list[dict[str, Any]]:
    """One schema per value shape of ``f``'s ops."""
    scalar = scalar_schema(f)
    out: list[dict[str, Any]] = []
    single = sorted(f.ops & _SCALAR_OPS)
    if single:
        out.append(_condition(f, single, scalar))
    listed = sorted(f.ops & {"in", "nin"})
    if listed:
        items = {"type": "array", "items": scalar, "minItems": 1, "maxItems": limits.max_in}
        out.append(_condition(f, listed, items))
    if "between" in f.ops:
        pair = {"type": "array", "items": scalar, "minItems": 2, "maxItems": 2}
        out.append(_condition(f, ["between"], pair))
    if "is_null" in f.ops:
        is_null = _condition(f, ["is_null"], {"type": "boolean"})
        is_null["required"] = ["field", "op"]
        out.append(is_null)
    return out


def sort_names(fieldset: FieldSet) -> list[str]:
    return [f.name for f in fieldset.by_name.values() if f.sortable or f is fieldset.id]


def sort_pattern(fieldset: FieldSet, limits: Limits) -> str:
    """``email,-created_at``: up to ``max_sort`` sortable fields, ``-`` for descending."""
    names = "|".join(re.escape(n) for n in sorted(sort_names(fieldset), key=len, reverse=True))
    one = f"\\s*[+-]?(?:{names})\\s*"
    return f"^(?:{one}(?:,{one}){{0,{limits.max_sort - 1}}})?$"


def document_schemas(
    fieldset: FieldSet,
    limits: Limits,
    max_limit: int = 1000,
    kind: str = "Filter",
    top_level: Sequence[dict[str, Any]] = (),
) -> dict[str, dict[str, Any]]:
    """Components: the filter document, its node and condition, the sort and the search body
    (``max_limit``: the largest page a search asks for; ``kind``: the name prefix, so an
    export source and a list of the same name do not collide; ``top_level``: more condition
    schemas a route accepts in the top-level ``filters`` only)."""
    p = _prefix(fieldset, kind)
    conditions = [
        s for f in fieldset.by_name.values() if f.ops for s in condition_schemas(f, limits)
    ]
    names = sort_names(fieldset)

    # One recursive node: a schema unrolled level by level states the depth limit but costs
    # a schema-driven tester (schemathesis' coverage phase) minutes per list; the limit is
    # deep enough (``Limits.max_depth``, 32) that no generated document reaches it, and the
    # description states it.
    def level(d: int) -> dict[str, Any]:
        return _ref(f"{p}.Node")

    def nodes(d: int) -> dict[str, Any]:
        return {"type": "array", "items": level(d), "minItems": 1}

    sort_item = {
        "anyOf": [
            {"type": "string", "pattern": f"^\\s*[+-]?(?:{'|'.join(map(re.escape, names))})\\s*$"},
            {
                "type": "object",
                "properties": {
                    "field": {"enum": names},
                    "dir": {"enum": ["asc", "desc"], "default": "asc"},
                },
                "required": ["field"],
                "additionalProperties": False,
            },
        ]
    }
    limits_note = (
        f" At most {limits.max_conditions} conditions and {limits.max_depth} levels of "
        "and/or/not in one document."
    )
    document: dict[str, Any] = {
        "type": "object",
        "description": "Filter document: `filters` (all must hold) and/or one `and`/`or`/"
        "`not`; a field sorted twice counts once." + limits_note,
        "properties": {
            "filters": {
                "type": ["array", "null"],
                "items": {"anyOf": [level(1), *top_level]} if top_level else level(1),
            },
            "and": nodes(2),
            "or": nodes(2),
            "not": level(2),
            "sort": _ref(f"{p}.Sort"),
        },
        "additionalProperties": False,
    }

    def combinator(key: str, inner: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {key: inner},
            "required": [key],
            "additionalProperties": False,
        }

    levels = {
        f"{p}.Node": {
            "anyOf": [
                _ref(f"{p}.Condition"),
                combinator("and", nodes(0)),
                combinator("or", nodes(0)),
                combinator("not", level(0)),
            ]
        }
    }
    return {
        f"{p}.Condition": {"anyOf": conditions} if conditions else {"not": {}},
        **levels,
        f"{p}.Sort": {
            "anyOf": [
                {"type": "null"},
                {"type": "string", "pattern": sort_pattern(fieldset, limits)},
                sort_item,
                {"type": "array", "items": sort_item, "maxItems": limits.max_sort},
            ]
        },
        # a bare list of conditions is taken as ``filters``
        f"{p}.Document": document,
        p: {"anyOf": [_ref(f"{p}.Document"), {"type": "array", "items": level(1)}]},
        f"{p}.Search": {
            **document,
            "description": "The filter document plus `limit` and `cursor`.",
            "properties": {
                **document["properties"],
                "limit": {"type": "integer", "minimum": 1, "maximum": max_limit},
                "cursor": {
                    "type": ["string", "null"],
                    "description": "`next_cursor` of the previous page",
                },
            },
        },
    }
