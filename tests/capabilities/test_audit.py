"""The audit log: same-transaction writes, hash chain, append-only, partitions, query API."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import httpx
import pytest

from tenantry.capabilities import audit
from tenantry.capabilities.audit.log import AuditLog
from tenantry.kernel.config import Settings
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.db.rls import tenant_tables
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.cli import cli
from tests.conftest import MakeTenant


def log_of(platform: Platform) -> AuditLog:
    log = platform.use(AuditLog)
    assert isinstance(log, AuditLog)
    return log


async def test_record_commits_and_rolls_back_with_the_change(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = (await make_tenant()).tenant
    with tenant_scope(t):
        async with platform.db.unit_of_work() as uow:
            await audit.record(uow, action="test.kept", resource="x:1", before={"a": 1}, after={})
        with contextlib.suppress(RuntimeError):
            async with platform.db.unit_of_work() as uow:
                await audit.record(uow, action="test.rolled-back", resource="x:2")
                raise RuntimeError("the change fails")
    actions = [r["action"] for r in await log_of(platform).events(t, before_seq=None, limit=50)]
    assert "test.kept" in actions
    assert "test.rolled-back" not in actions
    count, problems = await log_of(platform).verify(t)
    assert problems == []
    assert count == len(actions)


@pytest.mark.parametrize("isolation", ["shared", "schema", "database"])
async def test_concurrent_writers_of_one_tenant_keep_one_chain(
    platform: Platform, make_tenant: MakeTenant, isolation: str
) -> None:
    t = (await make_tenant(isolation)).tenant
    await log_of(platform).chain(t)  # its onboarding's records (tenant.created is pending)

    async def write(i: int) -> int:
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                await asyncio.sleep(0)
                return await audit.record(uow, action="test.concurrent", resource=f"n:{i}")

    seqs = await asyncio.gather(*(write(i) for i in range(30)))
    assert len(set(seqs)) == 30
    count, problems = await log_of(platform).verify(t)
    assert problems == []
    assert sorted(seqs)[-1] == count


async def test_verify_detects_an_edited_and_a_deleted_row(
    platform: Platform, make_tenant: MakeTenant, settings: Settings
) -> None:
    t = (await make_tenant()).tenant
    with tenant_scope(t):
        for i in range(4):
            async with platform.db.unit_of_work() as uow:
                await audit.record(uow, action="test.chain", resource=f"n:{i}", after={"i": i})
    r = cli(settings, "audit", "verify", "--tenant", t.slug)
    assert r.returncode == 0, r.stderr
    assert "intact" in r.stdout
    async with admin_connection(platform.db, as_owner=False) as conn:
        # Only a superuser bypassing the append-only trigger can do this; verify must notice.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE tenant_shared.audit_events SET after = '{\"i\": 99}' "
            "WHERE tenant_id = $1 AND resource = 'n:1'",
            t.id,
        )
    r = cli(settings, "audit", "verify", "--tenant", t.slug)
    assert r.returncode == 1
    assert "edited" in r.stderr
    async with admin_connection(platform.db, as_owner=False) as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE tenant_shared.audit_events SET after = '{\"i\": 1}' "
            "WHERE tenant_id = $1 AND resource = 'n:1'",
            t.id,
        )
        assert (await log_of(platform).verify(t))[1] == []
        await conn.execute(
            "DELETE FROM tenant_shared.audit_events WHERE tenant_id = $1 AND resource = 'n:2'",
            t.id,
        )
    problems = (await log_of(platform).verify(t))[1]
    assert any("missing" in p for p in problems), problems
    r = cli(settings, "audit", "verify", "--tenant", t.slug)
    assert r.returncode == 1
    assert "deleted" in r.stderr


async def test_the_app_role_cannot_change_or_delete_records(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = (await make_tenant()).tenant
    with tenant_scope(t):
        async with platform.db.unit_of_work() as uow:
            await audit.record(uow, action="test.immutable")
        for stmt in ("UPDATE audit_events SET outcome = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                async with platform.db.unit_of_work() as uow:
                    await uow.execute(stmt)


async def test_partitions_exist_and_carry_rls(platform: Platform, settings: Settings) -> None:
    async with admin_connection(platform.db, as_owner=False) as conn:
        tables = {t.table: t for t in await tenant_tables(conn, ["tenant_shared"])}
    parts = sorted(n for n in tables if n.startswith("audit_events_"))
    assert "audit_events_default" in parts
    assert len(parts) >= 4  # default + this month + 2 ahead
    for name in parts:
        assert tables[name].partition
        assert tables[name].safe, name
    # A partition made later (the job) gets RLS at once: drop the last one, recreate it.
    async with admin_connection(platform.db) as conn:
        await conn.execute(f'DROP TABLE tenant_shared."{parts[-2]}"')
    from tenantry.capabilities.audit.api import module

    assert await module.ensure_partitions(platform) >= 1
    async with admin_connection(platform.db, as_owner=False) as conn:
        again = {t.table: t for t in await tenant_tables(conn, ["tenant_shared"])}
    assert again[parts[-2]].safe


async def test_events_api_for_tenant_admins(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a = await make_tenant()
    for i in range(3):
        r = await client.post(
            "/api/v1/identity/users",
            headers={**a.auth, "X-Request-Id": f"req-{i}"},
            json={"email": f"u{i}@{a.tenant.slug}.test", "password": "long-enough-pw", "roles": []},
        )
        assert r.status_code == 201, r.text
    flt = '{"filters":[{"field":"action","op":"eq","value":"identity.member.add"}]}'
    r = await client.get("/api/v1/audit/events", params={"limit": 2, "filter": flt}, headers=a.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 2
    assert body["items"][0]["request_id"] == "req-2"
    assert body["items"][0]["after"] == {"roles": []}
    r2 = await client.get(
        "/api/v1/audit/events",
        params={"limit": 2, "filter": flt, "cursor": body["next_cursor"]},
        headers=a.auth,
    )
    seen = [e["request_id"] for e in r2.json()["items"]]
    assert seen[0] == "req-0"
    r3 = await client.post(
        "/api/v1/audit/events/search",
        headers=a.auth,
        json={
            "filters": [
                {"field": "request_id", "op": "in", "value": ["req-0", "req-1"]},
                {"field": "action", "op": "startswith", "value": "identity."},
            ],
            "sort": {"field": "occurred_at", "dir": "asc"},
        },
    )
    assert r3.status_code == 200, r3.text
    assert [e["request_id"] for e in r3.json()["items"]] == ["req-0", "req-1"]
    bad_filter = '{"filters":[{"field":"tenant_id","op":"eq","value":"x"}]}'
    bad = await client.get("/api/v1/audit/events", params={"filter": bad_filter}, headers=a.auth)
    assert bad.status_code == 422
    assert (await client.get("/api/v1/audit/events?cursor=x", headers=a.auth)).status_code == 404
    assert (await client.get("/api/v1/audit/events")).status_code == 401
