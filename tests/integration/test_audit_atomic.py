"""Each audited operator change and its record are one transaction: a real failure of the
record's write (a trigger raising in the log's ``audit_pending``) leaves the change undone,
and a real failure of the change (a trigger raising on its table) leaves no record.

The triggers are made in this module's own database (the test plugin gives every module a
copy of the template), limited to one tenant's rows, and dropped at the end of each test.
Covered: tenant suspend/resume (shared, schema and database-mode tenants), error triage, key
rotation, dead-letter replay and discard, the cache sweep (kernel/tenancy/audit).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tenantry.capabilities.audit.log import AuditLog
from tenantry.capabilities.cache.cache import Cache
from tenantry.kernel.db.privileged import admin_connection, fetch_admin, tenant_unit_of_work
from tenantry.kernel.db.uow import quote_ident
from tenantry.kernel.messaging import dead
from tenantry.kernel.messaging import sql as mq
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import Tenant, TenantStatus
from tests.capabilities.test_authz_platform_actions import operator_tenant
from tests.conftest import MakeTenant

REFUSE = """
CREATE OR REPLACE FUNCTION {schema}.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'refused by test_audit_atomic' USING ERRCODE = 'raise_exception';
END $$;
CREATE TRIGGER test_refuse BEFORE {event} ON {table} FOR EACH ROW
WHEN ({when}) EXECUTE FUNCTION {schema}.test_refuse();
"""
DROP = (
    "DROP TRIGGER IF EXISTS test_refuse ON {table}; DROP FUNCTION IF EXISTS {schema}.test_refuse()"
)


@contextlib.asynccontextmanager
async def refused(
    platform: Platform,
    table: str,
    when: str,
    *,
    event: str = "INSERT",
    tenant: Tenant | None = None,
) -> AsyncIterator[None]:
    """``event`` on ``table`` (of ``tenant``'s store: its schema, in its own database for a
    database-mode tenant; else the platform schema) raises while the block runs, for the
    rows ``when`` selects."""
    schema = quote_ident(tenant.schema if tenant else "tenantry")
    database = tenant.database if tenant else None
    server = tenant.server if tenant else "default"
    names = {"schema": schema, "table": f"{schema}.{table}", "event": event, "when": when}
    async with admin_connection(platform.db, server, database) as conn:
        await conn.execute(REFUSE.format(**names))
    try:
        yield
    finally:
        async with admin_connection(platform.db, server, database) as conn:
            await conn.execute(DROP.format(**names))


def records_of(tenant: Tenant) -> str:
    """The trigger condition: a record in ``tenant``'s log."""
    return f"NEW.tenant_id = '{tenant.id}'"


async def records(platform: Platform, tenant: Tenant, action: str) -> list[dict[str, Any]]:
    return await platform.use(AuditLog).events(tenant, before_seq=None, limit=100, action=action)


@pytest.fixture(scope="module")
async def operator(platform: Platform) -> Tenant:
    return await operator_tenant(platform)


# -- tenant suspend / resume --------------------------------------------------------------------
@pytest.mark.parametrize("isolation", ["shared", "schema", "database"])
async def test_a_failed_record_leaves_the_status_unchanged(
    platform: Platform, make_tenant: MakeTenant, isolation: str
) -> None:
    """Failed before (the status UPDATE committed on its owner connection first): the tenant
    stayed suspended without a record."""
    t = (await make_tenant(isolation)).tenant
    async with refused(platform, "audit_pending", records_of(t), tenant=t):
        with pytest.raises(asyncpg.RaiseError, match="refused by test_audit_atomic"):
            await platform.provisioner.set_status(t.slug, TenantStatus.SUSPENDED)
    platform.catalog.invalidate(t.id)
    now = await platform.catalog.get(t.id)
    assert now is not None
    assert now.status is TenantStatus.ACTIVE
    assert not await records(platform, t, "tenant.suspended")
    # and without the trigger the same call is made and recorded
    await platform.provisioner.set_status(t.slug, TenantStatus.SUSPENDED)
    [rec] = await records(platform, t, "tenant.suspended")
    assert rec["after"] == {"status": "suspended"}
    assert (rec["details"] or {}).get("atomic", True) is (isolation != "database")


async def test_a_failed_status_change_leaves_no_record(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = (await make_tenant("schema")).tenant
    async with refused(platform, "tenants", f"OLD.id = '{t.id}'", event="UPDATE"):
        with pytest.raises(asyncpg.RaiseError, match="refused by test_audit_atomic"):
            await platform.provisioner.set_status(t.slug, TenantStatus.SUSPENDED)
    platform.catalog.invalidate(t.id)
    now = await platform.catalog.get(t.id)
    assert now is not None
    assert now.status is TenantStatus.ACTIVE
    assert not await records(platform, t, "tenant.suspended")


# -- error triage -------------------------------------------------------------------------------
class AtomicProbeError(RuntimeError):
    pass


async def group(platform: Platform) -> int:
    try:
        raise AtomicProbeError(f"probe {uuid.uuid4()}")
    except AtomicProbeError as exc:
        return (await platform.observability.errors.capture(exc)).group_id


async def status_of(platform: Platform, gid: int) -> str:
    g = await platform.observability.errors.show(gid, occurrences=0)
    assert g is not None
    return str(g["status"])


async def triaged(platform: Platform, operator: Tenant, gid: int) -> list[dict[str, Any]]:
    return [
        e
        for e in await records(platform, operator, "error.status_set")
        if e["resource"] == f"error_group:{gid}"
    ]


async def test_error_triage_and_its_record_are_one_transaction(
    platform: Platform, operator: Tenant
) -> None:
    """Failed before: the command line's path (``ErrorTracker.set_status``) was not audited,
    so the triage went through without a record."""
    errors = platform.observability.errors
    gid = await group(platform)
    async with refused(platform, "audit_pending", records_of(operator), tenant=operator):
        with pytest.raises(asyncpg.RaiseError):
            await errors.set_status(gid, "resolved")
    assert await status_of(platform, gid) == "unresolved"
    async with refused(platform, "error_groups", f"OLD.id = {gid}", event="UPDATE"):
        with pytest.raises(asyncpg.RaiseError):
            await errors.set_status(gid, "resolved")
    assert not await triaged(platform, operator, gid)
    assert await errors.set_status(gid, "resolved")
    [rec] = await triaged(platform, operator, gid)
    assert (rec["before"], rec["after"]) == ({"status": "unresolved"}, {"status": "resolved"})


# -- key rotation -------------------------------------------------------------------------------
async def test_a_key_rotation_and_its_record_are_one_transaction(
    platform: Platform, operator: Tenant
) -> None:
    """Failed before: the rotation committed on its owner connection, unaudited."""
    keyring = platform.keyring
    signing = (await keyring.signing_key()).kid
    async with refused(platform, "audit_pending", records_of(operator), tenant=operator):
        with pytest.raises(asyncpg.RaiseError):
            await keyring.rotate("EdDSA")
    await keyring.load()
    assert (await keyring.signing_key()).kid == signing
    async with refused(platform, "signing_keys", "true"):
        with pytest.raises(asyncpg.RaiseError):
            await keyring.rotate("EdDSA")
    assert not await records(platform, operator, "keys.rotated")
    kid = await keyring.rotate("EdDSA")
    [rec] = await records(platform, operator, "keys.rotated")
    assert rec["resource"] == f"signing_key:{kid}"
    assert rec["before"] == {"signing": [signing]}


# -- dead letters -------------------------------------------------------------------------------
async def dead_letter(platform: Platform, tenant: Tenant) -> uuid.UUID:
    message_id = uuid.uuid4()
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        await uow.execute(
            mq.INSERT_DEAD,
            tenant.id,
            message_id,
            "probe.Happened",
            "event",
            None,
            {"n": 1},
            {},
            3,
            "boom",
        )
        dead_id: uuid.UUID = await uow.fetchval(
            "SELECT id FROM outbox_dead WHERE message_id = $1", message_id
        )
    return dead_id


async def dead_ids(platform: Platform, tenant: Tenant) -> set[uuid.UUID]:
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        return {r["id"] for r in await uow.fetch("SELECT id FROM outbox_dead")}


@pytest.mark.parametrize("verb", ["replay", "discard"])
async def test_a_dead_letter_and_its_record_are_one_transaction(
    platform: Platform, make_tenant: MakeTenant, verb: str
) -> None:
    """Failed before: replay and discard were not audited at all."""
    t = (await make_tenant("schema")).tenant
    action = dead.replay if verb == "replay" else dead.discard
    did = await dead_letter(platform, t)
    async with refused(platform, "audit_pending", records_of(t), tenant=t):
        with pytest.raises(asyncpg.RaiseError):
            await action(platform.db, platform.catalog, did)
    assert did in await dead_ids(platform, t)
    async with refused(platform, "outbox_dead", "true", event="DELETE", tenant=t):
        with pytest.raises(asyncpg.RaiseError):
            await action(platform.db, platform.catalog, did)
    name = f"messaging.dead.{verb}ed" if verb == "replay" else "messaging.dead.discarded"
    assert not await records(platform, t, name)
    assert await action(platform.db, platform.catalog, did)
    assert did not in await dead_ids(platform, t)
    [rec] = await records(platform, t, name)
    assert rec["resource"] == f"dead_letter:{did}"


EXPIRED = """
SELECT count(*) AS n FROM tenantry.cache_entries WHERE tenant_id = $1 AND expires_at < now()
"""


# -- cache sweep --------------------------------------------------------------------------------
async def test_a_cache_sweep_and_its_record_are_one_transaction(
    platform: Platform, make_tenant: MakeTenant, operator: Tenant
) -> None:
    """Failed before: the sweep was not audited (``sweep`` took no audit)."""
    t = (await make_tenant()).tenant
    backend = platform.use(Cache).backend
    for i in range(3):
        await backend.set(t.id, f"atomic:{i}", b"1", 0.001, ())
    await asyncio.sleep(0.05)

    async def expired() -> int:
        rows = await fetch_admin(platform.db, EXPIRED, t.id)  # as the admin: no RLS
        return int(rows[0]["n"])

    async with refused(platform, "audit_pending", records_of(operator), tenant=operator):
        with pytest.raises(asyncpg.RaiseError):
            await backend.sweep(audit=platform.platform_audit)
    assert await expired() == 3
    assert not await records(platform, operator, "cache.swept")
    removed = await backend.sweep(audit=platform.platform_audit)
    assert removed >= 3
    assert await expired() == 0
    [rec] = await records(platform, operator, "cache.swept")
    assert rec["after"] == {"removed": removed}
