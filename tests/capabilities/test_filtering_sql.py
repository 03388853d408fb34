"""The filter engine on a real PostgreSQL table: every op, and hypothesis properties —
any document either is a 422 or compiles to SQL that runs, and for valid documents the SQL
result equals a Python reference evaluation on the same rows."""

from __future__ import annotations

import contextlib
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantry.capabilities.filtering import compile_document
from tenantry.kernel.errors import ValidationFailed
from tests.capabilities.conftest import ITEMS, SCHEMA, matches, only_whitelisted_sql
from tests.capabilities.strategies import any_documents, valid_documents

ItemsDb = tuple[asyncpg.Connection, list[dict[str, Any]]]
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def ids_where(conn: asyncpg.Connection, doc: Any) -> set[Any]:
    c = compile_document(ITEMS, doc, offset=1)
    sql = f"SELECT i.id FROM {SCHEMA}.items i WHERE i.big <> $1 AND {c.sql}"
    # $1 is a parameter of the caller's own, to prove the offset numbering works
    return {r["id"] for r in await conn.fetch(sql, 2**63 - 1, *c.params)}


def expected(rows: list[dict[str, Any]], doc: dict[str, Any]) -> set[Any]:
    return {r["id"] for r in rows if r["big"] != 2**63 - 1 and matches(doc, r)}


EVERY_OP = [
    ("qty", "eq", 1),
    ("qty", "ne", 1),
    ("qty", "gt", 0),
    ("price", "gte", "0.5"),
    ("day", "lt", "2026-01-01"),
    ("at", "lte", "2026-01-01T00:00:00Z"),
    ("status", "in", ["new", "open"]),
    ("status", "nin", ["new"]),
    ("at", "between", ["2025-12-31T22:00:00", "2026-01-01T02:00:00+00:00"]),
    ("name", "contains", "%"),
    ("name", "contains", "_"),
    ("name", "contains", "\\"),
    ("name", "icontains", "b"),
    ("name", "startswith", "a"),
    ("meta.color", "eq", "red"),
    ("meta.color", "is_null", True),
    ("flag", "is_null", False),
    ("ref", "in", ["00000000-0000-0000-0000-000000000001"]),
    ("name", "gt", "a"),
]


async def test_every_op_matches_the_reference(items_db: ItemsDb) -> None:
    conn, rows = items_db
    for field, op, value in EVERY_OP:
        for doc in (
            {"filters": [{"field": field, "op": op, "value": value}]},
            {"filters": [{"not": {"field": field, "op": op, "value": value}}]},
        ):
            got, want = await ids_where(conn, doc), expected(rows, doc)
            assert got == want, doc
            assert 0 < len(want) < len(rows) or op == "is_null", f"weak example {doc}"


async def test_like_wildcards_are_literal(items_db: ItemsDb) -> None:
    conn, rows = items_db
    for ch in "%_\\":
        doc = {"filters": [{"field": "name", "op": "contains", "value": ch}]}
        got = await ids_where(conn, doc)
        assert got == {r["id"] for r in rows if r["name"] is not None and ch in r["name"]}
        assert got, ch


@PROPERTY
@given(doc=valid_documents)
async def test_sql_equals_reference(items_db: ItemsDb, doc: dict[str, Any]) -> None:
    conn, rows = items_db
    assert await ids_where(conn, doc) == expected(rows, doc)


@PROPERTY
@given(doc=any_documents)
async def test_any_document_is_a_422_or_valid_sql(items_db: ItemsDb, doc: Any) -> None:
    conn, rows = items_db
    failure: ValidationFailed | None = None
    try:
        got = await ids_where(conn, doc)
    except ValidationFailed as exc:
        failure = exc
    if failure is not None:
        assert failure.status == 422
        assert failure.errors
        return
    if isinstance(doc, dict) and isinstance(doc.get("filters"), list):
        assert got == expected(rows, doc)


@settings(max_examples=60, deadline=None)
@given(junk=st.text(max_size=30))
def test_junk_text_never_crashes_the_parser(junk: str) -> None:
    with contextlib.suppress(ValidationFailed):
        compile_document(ITEMS, {"filters": [{"field": junk, "op": junk, "value": junk}]})


@settings(max_examples=200, deadline=None)
@given(doc=any_documents)
def test_client_text_never_reaches_the_sql(doc: Any) -> None:
    try:
        compiled = compile_document(ITEMS, doc, offset=3)
    except ValidationFailed:
        return
    assert only_whitelisted_sql(compiled.sql), compiled.sql
    assert not only_whitelisted_sql(compiled.sql + " 'x'")  # the checker has teeth
