"""The filter engine without a database: parsing, validation (422 naming field and op),
the SQL of every op, parameter numbering, LIKE escaping and limits."""

from __future__ import annotations

from typing import Any

import pytest

from tenantry.capabilities.filtering import (
    DEFAULT_LIMITS,
    FieldSet,
    Limits,
    compile_document,
    escape_like,
    fields,
    parse_sort,
)
from tenantry.kernel.errors import ValidationFailed
from tests.capabilities.filtering.conftest import ITEMS


def sql_of(doc: Any, offset: int = 0) -> tuple[str, list[Any]]:
    c = compile_document(ITEMS, doc, offset=offset)
    return c.sql, c.params


def cond(field: str, op: str, value: Any = None) -> dict[str, Any]:
    d: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        d["value"] = value
    return d


def rejected(doc: Any, limits: Limits | None = None) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as exc:
        compile_document(ITEMS, doc, limits=limits or DEFAULT_LIMITS)
    assert exc.value.status == 422
    return exc.value


@pytest.mark.parametrize(
    ("op", "value", "sql", "params"),
    [
        ("eq", 3, "((i.qty) = $1::int4)", [3]),
        ("ne", 3, "(i.qty) IS DISTINCT FROM $1::int4", [3]),
        ("gt", 3.0, "((i.qty) > $1::int4)", [3]),  # JSON Schema's integer: 3.0 is 3
        ("gte", 3, "((i.qty) >= $1::int4)", [3]),
        ("lt", 3, "((i.qty) < $1::int4)", [3]),
        ("lte", 3, "((i.qty) <= $1::int4)", [3]),
        ("in", [1, 2], "((i.qty) = ANY($1::int4[]))", [[1, 2]]),
        ("nin", [1], "((i.qty) IS NULL OR (i.qty) <> ALL($1::int4[]))", [[1]]),
        ("between", [1, 4], "((i.qty) BETWEEN $1::int4 AND $2::int4)", [1, 4]),
        ("is_null", True, "(i.qty) IS NULL", []),
        ("is_null", False, "(i.qty) IS NOT NULL", []),
    ],
)
def test_every_comparison_op(op: str, value: Any, sql: str, params: list[Any]) -> None:
    assert sql_of([cond("qty", op, value)]) == (sql, params)


def test_like_ops_escape_wildcards() -> None:
    name = '(i.name COLLATE "C")'
    assert sql_of([cond("name", "contains", "5%_off\\")]) == (
        f"({name} LIKE $1::text)",
        ["%5\\%\\_off\\\\%"],
    )
    assert sql_of([cond("name", "icontains", "Ab")]) == (f"({name} ILIKE $1::text)", ["%Ab%"])
    assert sql_of([cond("name", "startswith", "a_")]) == (f"({name} LIKE $1::text)", ["a\\_%"])
    assert escape_like("%_\\") == "\\%\\_\\\\"


def test_nesting_offset_and_negation_guards() -> None:
    doc = {
        "filters": [
            cond("big", "gt", 1),
            {"or": [cond("status", "eq", "new"), {"not": cond("qty", "eq", 2)}]},
        ]
    }
    sql, params = sql_of(doc, offset=2)
    assert sql == (
        "(((i.big) > $3::int8) AND (((i.status) = $4::text) OR "
        "NOT (((i.qty) IS NOT NULL AND (i.qty) = $5::int4))))"
    )
    assert params == [1, "new", 2]
    # a non-nullable field needs no guard; ne on it is a plain <>
    assert sql_of({"not": cond("big", "eq", 1)})[0] == "NOT (((i.big) = $1::int8))"
    assert sql_of([cond("big", "ne", 1)])[0] == "(i.big) <> $1::int8"


def test_empty_documents_filter_nothing() -> None:
    docs: list[Any] = [None, {}, [], {"filters": []}, {"sort": "qty"}]
    for doc in docs:
        assert sql_of(doc) == ("TRUE", [])


def test_values_are_parsed_to_the_field_type() -> None:
    from datetime import UTC, date, datetime
    from decimal import Decimal
    from uuid import UUID

    _, p = sql_of([cond("price", "eq", 1.1)])
    assert p == [Decimal("1.1")]
    _, p = sql_of([cond("day", "eq", "2026-01-02")])
    assert p == [date(2026, 1, 2)]
    _, p = sql_of([cond("at", "gte", "2026-01-02T03:00:00+02:00")])
    assert p == [datetime(2026, 1, 2, 1, tzinfo=UTC)]
    _, p = sql_of([cond("at", "lt", "2026-01-02")])  # a bare date is midnight UTC
    assert p == [datetime(2026, 1, 2, tzinfo=UTC)]
    _, p = sql_of([cond("ref", "in", [str(UUID(int=1))])])
    assert p == [[UUID(int=1)]]
    _, p = sql_of([cond("flag", "eq", True)])
    assert p == [True]
    sql, p = sql_of([cond("meta.color", "eq", "red")])
    assert sql == "((i.meta->>'color') = $1::text)"


@pytest.mark.parametrize(
    ("doc", "field", "op"),
    [
        ([cond("nope", "eq", 1)], "nope", "eq"),
        ([cond("tenant_id", "eq", "x")], "tenant_id", "eq"),
        ([cond("qty", "contains", "1")], "qty", "contains"),
        ([cond("qty", "like", "1")], "qty", "like"),
        ([cond("qty", "eq", "one")], "qty", "eq"),
        ([cond("qty", "eq", True)], "qty", "eq"),
        ([cond("qty", "eq", 2**31)], "qty", "eq"),
        ([cond("big", "eq", 2**63)], "big", "eq"),
        ([cond("qty", "eq", 1.5)], "qty", "eq"),
        ([{"field": "qty", "op": "eq", "value": None}], "qty", "eq"),
        ([{"field": "qty", "op": "eq"}], "qty", "eq"),
        ([cond("qty", "in", [])], "qty", "in"),
        ([cond("qty", "in", 3)], "qty", "in"),
        ([cond("qty", "between", [1])], "qty", "between"),
        ([cond("qty", "is_null", "yes")], "qty", "is_null"),
        ([cond("price", "eq", "NaN")], "price", "eq"),
        ([cond("price", "eq", "1e999999")], "price", "eq"),
        ([cond("day", "eq", "2026-13-01")], "day", "eq"),
        ([cond("at", "eq", "0001-01-01T00:00:00+05:00")], "at", "eq"),
        ([cond("at", "eq", 1700000000)], "at", "eq"),
        ([cond("ref", "eq", "not-a-uuid")], "ref", "eq"),
        ([cond("status", "eq", "deleted")], "status", "eq"),
        ([cond("name", "eq", "a\x00b")], "name", "eq"),
        ([cond("name", "eq", "x" * 1001)], "name", "eq"),
        ([cond("name", "eq", {"$ne": 1})], "name", "eq"),
    ],
)
def test_invalid_conditions_name_field_and_op(doc: Any, field: str, op: str) -> None:
    err = rejected(doc)
    assert err.errors
    assert err.errors[0]["filter_field"] == field
    assert err.errors[0]["op"] == op
    assert repr(field)[:20] in err.detail


@pytest.mark.parametrize(
    "doc",
    [
        "qty=1",
        42,
        {"filter": []},
        {"filters": {}},
        {"filters": [1]},
        {"filters": [{"and": []}]},
        {"filters": [{"and": {}}]},
        {"filters": [{"or": [cond("qty", "eq", 1)], "and": []}]},
        {"filters": [{"not": [cond("qty", "eq", 1)]}]},
        {"filters": [{"field": "qty", "op": "eq", "value": 1, "sql": "1=1"}]},
    ],
)
def test_malformed_documents(doc: Any) -> None:
    rejected(doc)


def test_limits() -> None:
    limits = Limits(max_conditions=3, max_depth=3, max_in=2)
    rejected([cond("qty", "eq", 1)] * 4, limits)
    compile_document(ITEMS, [cond("qty", "eq", 1)] * 3, limits=limits)
    rejected([cond("qty", "in", [1, 2, 3])], limits)
    deep: dict[str, Any] = cond("qty", "eq", 1)
    for _ in range(3):
        deep = {"not": deep}
    rejected([deep], limits)
    compile_document(ITEMS, [{"not": {"not": cond("qty", "eq", 1)}}], limits=limits)
    # the defaults hold against a pathological document too
    nested: dict[str, Any] = cond("qty", "eq", 1)
    for _ in range(500):
        nested = {"and": [nested]}
    rejected([nested])
    rejected([cond("qty", "eq", 1)] * 1001)


def test_sort_parsing() -> None:
    keys = parse_sort("qty,-at", ITEMS)
    assert [(k.field.name, k.desc) for k in keys] == [("qty", False), ("at", True)]
    keys = parse_sort([{"field": "day", "dir": "desc"}], ITEMS)
    assert [(k.spec) for k in keys] == ["-day"]
    # a field sorted again is ignored (its first mention decides)
    assert [k.spec for k in parse_sort("qty,-qty,at", ITEMS)] == ["qty", "at"]
    for bad in ("ref", "nope", "a,b,c,d,e", {"field": "qty", "dir": "up"}, 3, [1]):
        with pytest.raises(ValidationFailed):
            parse_sort(bad, ITEMS)


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="tenant"):
        fields.uuid("tenant_id", "t.tenant_id")
    with pytest.raises(ValueError, match="tenant"):
        fields.text("owner", "coalesce(t.tenant_id::text, '')")
    with pytest.raises(ValueError, match="unknown ops"):
        fields.text("a", "t.a", ops=["regex"])
    with pytest.raises(ValueError, match="LIKE"):
        fields.integer("a", "t.a", ops=["contains"])
    with pytest.raises(ValueError, match="JSON path"):
        fields.json_text("m.x", "t.m", "x'; drop table t; --")
    with pytest.raises(ValueError, match="twice"):
        FieldSet("x", id=fields.uuid("id", "t.id"), fields=[fields.text("a", "t.a")] * 2)
    assert fields.json_text("m.a.b", "t.m", "a", "b").expr == "t.m->'a'->>'b'"
    assert fields.uuid("parent", "t.parent_tenant_id").expr  # another column is fine
