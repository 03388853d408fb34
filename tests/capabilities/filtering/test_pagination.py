"""Keyset pagination on a real table: every page walk equals one ordered query (NULLs in
sort columns included), cursors are tamper-proof, and a walk stays exact under inserts."""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantry.capabilities.filtering import FieldSet, fields
from tenantry.capabilities.pagination import CursorSigner, ListQuery
from tenantry.capabilities.pagination.cursor import InvalidCursor
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.db.rls import ensure_rls
from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.platform import Platform
from tests.capabilities.filtering.conftest import (
    BASE_AT,
    INSERT,
    ITEMS,
    SCHEMA,
    SELECT_ITEMS,
    make_rows,
    matches,
    only_whitelisted_sql,
    reference_order,
    row_args,
)
from tests.capabilities.filtering.strategies import valid_documents

ItemsDb = tuple[asyncpg.Connection, list[dict[str, Any]]]
SORTABLE = sorted(n for n, f in ITEMS.by_name.items() if f.sortable)


async def walk(
    conn: asyncpg.Connection,
    signer: CursorSigner,
    *,
    doc: Any = None,
    sort: str | None = None,
    limit: int = 10,
    between_pages: Any = None,
) -> list[Any]:
    """Every id of every page, following next_cursor through its string form."""
    seen: list[Any] = []
    cursor = None
    for _ in range(1000):
        q = ListQuery.parse(
            ITEMS, signer, document=doc, sort=sort, limit=limit, cursor=cursor, scope="t1"
        )
        compiled = q.compile()
        assert only_whitelisted_sql(compiled.where), compiled.where
        assert only_whitelisted_sql(compiled.order_by), compiled.order_by
        page = await q.fetch_page(conn, SELECT_ITEMS)
        assert len(page["items"]) <= limit
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert page["items"], "a cursor never points past an empty page"
        if between_pages is not None:
            await between_pages()
    raise AssertionError("pagination did not end")


@st.composite
def sort_specs(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(SORTABLE), min_size=1, max_size=3, unique=True))
    return ",".join(("-" if draw(st.booleans()) else "") + n for n in names)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sort=sort_specs(),
    limit=st.integers(1, 40),
    doc=st.one_of(st.none(), valid_documents),
)
async def test_pages_equal_one_ordered_query(
    items_db: ItemsDb, signer: CursorSigner, sort: str, limit: int, doc: Any
) -> None:
    conn, rows = items_db
    got = await walk(conn, signer, doc=doc, sort=sort, limit=limit)
    q = ListQuery.parse(ITEMS, signer, document=doc, sort=sort, limit=1000)
    text, args = q.render(SELECT_ITEMS)
    assert got == [r["id"] for r in await conn.fetch(text, *args)][: len(got)]
    assert len(got) == len(set(got))
    wanted = [r for r in rows if doc is None or matches(doc, r)]
    assert len(got) == len(wanted)
    if "color" not in sort:  # meta.color sorts in the database's collation, not Python's
        spec = [(s.lstrip("-"), s.startswith("-")) for s in sort.split(",")]
        assert got == reference_order(wanted, spec)


async def test_default_sort_and_nulls(items_db: ItemsDb, signer: CursorSigner) -> None:
    conn, rows = items_db
    assert await walk(conn, signer, limit=7) == reference_order(rows, [("at", True)])
    for spec in ("qty", "-qty", "status,-price", "-flag,day"):
        parsed = [(s.lstrip("-"), s.startswith("-")) for s in spec.split(",")]
        assert await walk(conn, signer, sort=spec, limit=3) == reference_order(rows, parsed)


def _flip(s: str, i: int) -> str:
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1 :]


async def test_tampered_or_foreign_cursors_are_400(items_db: ItemsDb, signer: CursorSigner) -> None:
    conn, _ = items_db
    q = ListQuery.parse(ITEMS, signer, sort="qty", limit=5, scope="t1")
    cursor = (await q.fetch_page(conn, SELECT_ITEMS))["next_cursor"]
    assert isinstance(cursor, str)
    ListQuery.parse(ITEMS, signer, sort="qty", limit=9, cursor=cursor, scope="t1")  # ok

    body, mac = cursor.split(".")
    forged = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["k"][0] = 99
    forged_body = base64.urlsafe_b64encode(orjson.dumps(forged)).decode().rstrip("=")
    bad = [
        _flip(cursor, 3),
        _flip(cursor, len(cursor) - 2),
        f"{forged_body}.{mac}",
        body,
        "",
        ".",
        "not a cursor",
        "_w",
        "%%%.%%%",
        cursor + "x" * 5000,
        CursorSigner(b"another-key-another-key").sign("identity|t1", {"q": "", "k": []}),
    ]
    for c in bad:
        with pytest.raises(InvalidCursor) as exc:
            ListQuery.parse(ITEMS, signer, sort="qty", cursor=c, scope="t1")
        assert exc.value.status == 404, c
    # valid signature, but another tenant, sort, filter or key
    for kwargs in (
        {"sort": "qty", "scope": "t2"},
        {"sort": "-qty", "scope": "t1"},
        {"sort": "qty", "scope": "t1", "document": [{"field": "qty", "op": "gt", "value": 0}]},
    ):
        with pytest.raises(InvalidCursor):
            ListQuery.parse(ITEMS, signer, cursor=cursor, **kwargs)
    with pytest.raises(InvalidCursor):
        ListQuery.parse(ITEMS, CursorSigner(b"x" * 32), sort="qty", cursor=cursor, scope="t1")
    with pytest.raises(InvalidCursor):
        ListQuery.parse(ITEMS, signer, sort="qty", cursor=123, scope="t1")


def test_limit_bounds(signer: CursorSigner) -> None:
    for bad in (0, 1001, -1, "10", True, 2.5):
        with pytest.raises(ValidationFailed):
            ListQuery.parse(ITEMS, signer, limit=bad)
    assert ListQuery.parse(ITEMS, signer, limit=1000).limit == 1000
    assert ListQuery.parse(ITEMS, signer).limit == 50
    assert ListQuery.parse(ITEMS, signer, limit=50.0).limit == 50  # JSON Schema's integer
    # the sort parameter wins over a sort inside the document
    q = ListQuery.parse(ITEMS, signer, document={"sort": "qty"}, sort="-qty")
    assert q.sort[0].spec == "-qty"


def test_cursors_carry_stored_values_clients_could_not_send(signer: CursorSigner) -> None:
    """A sort value longer than a filter string may be, or an enum value the list does not
    declare (added later in the database), still makes a working cursor."""
    rows = [
        {"id": uuid.uuid4(), "name": "x" * 1500, "status": "archived"},
        {"id": uuid.uuid4(), "name": "y", "status": "new"},
    ]
    for sort in ("name", "-status"):
        q = ListQuery.parse(ITEMS, signer, sort=sort, limit=1, scope="t1")
        cursor = q.page(rows)["next_cursor"]
        assert cursor is not None
        again = ListQuery.parse(ITEMS, signer, sort=sort, limit=1, scope="t1", cursor=cursor)
        assert again.cursor_values is not None
        assert again.cursor_values[0] in ("x" * 1500, "archived")


def test_rows_without_the_sort_key_fail_loudly(signer: CursorSigner) -> None:
    q = ListQuery.parse(ITEMS, signer, sort="qty", limit=1)
    with pytest.raises(RuntimeError, match="sort columns"):
        q.page([{"id": uuid.uuid4()}, {"id": uuid.uuid4()}])


@pytest.mark.parametrize("sort", ["-at", "at", "qty,-price", "-status,name"])
async def test_walk_is_stable_under_concurrent_inserts(
    platform: Platform, items_db: ItemsDb, signer: CursorSigner, sort: str
) -> None:
    conn, _ = items_db
    before = {r["id"] for r in await conn.fetch(SELECT_ITEMS)}
    rnd = random.Random(sort)
    stop = asyncio.Event()
    inserted: list[Any] = []

    async with admin_connection(platform.db) as writer:

        async def keep_inserting() -> None:
            while not stop.is_set():
                new = make_rows(3, seed=rnd.randint(0, 10**9))
                for r in new:  # new rows land before, inside and after the walk's position
                    r["at"] = BASE_AT + timedelta(hours=rnd.randint(-6, 6))
                await writer.executemany(INSERT, [row_args(r) for r in new])
                inserted.extend(r["id"] for r in new)
                await asyncio.sleep(0)

        async def yield_to_writer() -> None:
            await asyncio.sleep(0.002)

        task = asyncio.create_task(keep_inserting())
        try:
            seen = await walk(conn, signer, sort=sort, limit=13, between_pages=yield_to_writer)
        finally:
            stop.set()
            await task
    assert len(seen) == len(set(seen)), "a row was seen twice"
    assert before <= set(seen), "a pre-existing row was missed"
    assert inserted, "the writer did not run during the walk"
    assert set(seen) - before, "no concurrent insert landed in a later page"
    await conn.execute(f"DELETE FROM {SCHEMA}.items WHERE id = ANY($1::uuid[])", inserted)


async def test_keyset_page_is_served_by_an_index(items_db: ItemsDb, signer: CursorSigner) -> None:
    """With an index on (sort column, id), a page after a cursor is an index range scan: no
    sort, no scan of the earlier rows (the row-comparison form of the predicate)."""
    conn, _ = items_db
    q = ListQuery.parse(ITEMS, signer, sort="-at", limit=5, scope="t1")
    cursor = (await q.fetch_page(conn, SELECT_ITEMS))["next_cursor"]
    q = ListQuery.parse(ITEMS, signer, sort="-at", limit=5, scope="t1", cursor=cursor)
    text, args = q.render(SELECT_ITEMS)
    assert "(i.at), (i.id)) < (" in text
    async with conn.transaction():
        await conn.execute(f"CREATE INDEX items_at_id ON {SCHEMA}.items (at, id)")
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + text, *args))
        await conn.execute(f"DROP INDEX {SCHEMA}.items_at_id")
    assert "Index Scan Backward using items_at_id" in plan, plan
    assert "Sort" not in plan, plan
    assert "Index Cond" in plan, plan


# a managed schema name (tenant_*), so ensure_rls treats it as a tenant store; it is created
# and dropped in one rolled-back transaction
RLS_SCHEMA = "tenant_filtering_rls_probe"
ORDERS = FieldSet(
    "test.orders",
    id=fields.uuid("id", "o.id"),
    fields=[fields.datetime("at", "o.at", sortable=True)],
    default_sort="-at",
)


async def test_keyset_page_under_rls_is_one_index_range(
    platform: Platform, signer: CursorSigner
) -> None:
    """The hot list query as the app role under the tenant policy (RESTRICTIVE + app_access,
    from the kernel's ensure_rls): with an index (tenant_id, at, id), the tenant qual and the
    keyset row comparison are both index conditions; no sort, no filter over other rows."""
    app = platform.settings.database.app_user
    async with admin_connection(platform.db) as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(
                f"""CREATE SCHEMA {RLS_SCHEMA};
                CREATE TABLE {RLS_SCHEMA}.orders (tenant_id uuid NOT NULL, id uuid NOT NULL,
                    at timestamptz NOT NULL, PRIMARY KEY (tenant_id, id));
                CREATE INDEX orders_page ON {RLS_SCHEMA}.orders (tenant_id, at, id);
                INSERT INTO {RLS_SCHEMA}.orders
                SELECT t::uuid, gen_random_uuid(), now() - make_interval(secs => i)
                FROM generate_series(1, 3000) i,
                     unnest(ARRAY['00000000-0000-0000-0000-00000000000a',
                                  '00000000-0000-0000-0000-00000000000b']) t;
                GRANT USAGE ON SCHEMA {RLS_SCHEMA} TO "{app}";
                ANALYZE {RLS_SCHEMA}.orders"""
            )
            assert await ensure_rls(conn, [RLS_SCHEMA], app)
            await conn.execute(f'SET LOCAL ROLE "{app}"')
            await conn.execute(
                "SELECT set_config('app.tenant_id', '00000000-0000-0000-0000-00000000000a', true)"
            )
            select = f"SELECT o.id, o.at FROM {RLS_SCHEMA}.orders o"
            q = ListQuery.parse(ORDERS, signer, limit=20, scope="a")
            first = await q.fetch_page(conn, select)
            assert len(first["items"]) == 20
            q = ListQuery.parse(ORDERS, signer, limit=20, scope="a", cursor=first["next_cursor"])
            text, args = q.render(select)
            page = await conn.fetch(text, *args)
            assert len(page) == 21
            assert not {r["id"] for r in page} & {r["id"] for r in first["items"]}
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + text, *args))
        finally:
            await tx.rollback()
    assert "Scan Backward using orders_page" in plan, plan  # an index (only) scan
    assert "Sort" not in plan, plan
    assert "Filter" not in plan, plan
    cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "tenant_id = " in cond, plan  # "(InitPlan 1).col1" or "$0" by version
    assert "ROW(at, id) < ROW(" in cond, plan
