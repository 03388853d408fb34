"""Authorization through the HTTP API and the engine: roles CRUD, policies, invalidation on
every process, decisions audited, platform:admin only for the operator tenant."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from tenantry.capabilities import authz
from tenantry.capabilities.audit.buffer import AuditBuffer
from tenantry.capabilities.audit.log import AuditLog
from tenantry.capabilities.authz import Authz, Resource
from tenantry.kernel.auth.actions import PLATFORM_ADMIN
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import Principal, tenant_scope
from tests.conftest import PASSWORD, MakeTenant, TenantFixture, get_token


async def member(
    client: httpx.AsyncClient, t: TenantFixture, name: str, roles: list[str]
) -> tuple[str, dict[str, str]]:
    email = f"{name}@{t.tenant.slug}.test"
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": email, "password": PASSWORD, "roles": roles},
    )
    assert r.status_code == 201, r.text
    token = await get_token(client, email, PASSWORD, t.tenant.slug)
    return r.json()["id"], {"Authorization": f"Bearer {token}"}


async def eventually(
    probe: object, want: int, client: httpx.AsyncClient, headers: dict[str, str], url: str
) -> None:
    for _ in range(100):
        if (await client.get(url, headers=headers)).status_code == want:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{url} never answered {want}")


async def test_roles_crud_takes_effect_at_once(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r = await client.post(
        "/api/v1/identity/roles",
        headers=t.auth,
        json={"name": "auditor", "actions": ["audit:read"], "description": "reads the log"},
    )
    assert r.status_code == 201, r.text
    assert (
        await client.post("/api/v1/identity/roles", headers=t.auth, json={"name": "auditor"})
    ).status_code == 409
    bad = await client.post(
        "/api/v1/identity/roles", headers=t.auth, json={"name": "x", "actions": ["nope:zap"]}
    )
    assert bad.status_code == 422
    assert "nope:zap" in bad.text
    _, auditor = await member(client, t, "aud", ["auditor"])
    url = "/api/v1/audit/events?limit=1"
    assert (await client.get(url, headers=auditor)).status_code == 200
    # Revoke: the same token is refused as soon as the change is committed (NOTIFY).
    r = await client.put("/api/v1/identity/roles/auditor", headers=t.auth, json={"actions": []})
    assert r.status_code == 200, r.text
    await eventually(None, 403, client, auditor, url)
    r = await client.put(
        "/api/v1/identity/roles/auditor", headers=t.auth, json={"actions": ["audit:*"]}
    )
    await eventually(None, 200, client, auditor, url)
    assert (
        await client.delete("/api/v1/identity/roles/auditor", headers=t.auth)
    ).status_code == 204
    await eventually(None, 403, client, auditor, url)
    assert (await client.delete("/api/v1/identity/roles/admin", headers=t.auth)).status_code == 409
    assert (await client.get("/api/v1/identity/roles", headers=auditor)).status_code == 403


async def test_abac_policy_through_the_api(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    await client.post(
        "/api/v1/identity/roles", headers=t.auth, json={"name": "approver", "actions": []}
    )
    uid, approver = await member(client, t, "appr", ["approver"])
    r = await client.put(
        "/api/v1/authz/policies/small-own-dept",
        headers=t.auth,
        json={
            "effect": "allow",
            "actions": ["audit:read"],
            "roles": ["approver"],
            "condition": {
                "all": [
                    {"attr": "resource.amount", "op": "lt", "value": 10000},
                    {"attr": "resource.department", "op": "eq", "ref": "principal.department"},
                ]
            },
        },
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        f"/api/v1/authz/subjects/{uid}/attributes", headers=t.auth, json={"department": "sales"}
    )
    assert r.status_code == 200

    async def ask(amount: int, dept: str) -> dict[str, object]:
        for _ in range(50):  # the attribute change invalidates asynchronously (NOTIFY)
            res = await client.post(
                "/api/v1/authz/check",
                headers=approver,
                json={
                    "action": "audit:read",
                    "resource_type": "transaction",
                    "attributes": {"amount": amount, "department": dept},
                },
            )
            body: dict[str, object] = res.json()
            if body["policy"] != "default:deny" or amount >= 10000 or dept != "sales":
                return body
            await asyncio.sleep(0.02)
        return body

    assert await ask(9999, "sales") == {
        "allowed": True,
        "policy": "policy:small-own-dept",
        "action": "audit:read",
    }
    assert (await ask(10000, "sales"))["allowed"] is False
    assert (await ask(5, "ops"))["allowed"] is False
    bad = await client.put(
        "/api/v1/authz/policies/broken",
        headers=t.auth,
        json={
            "effect": "allow",
            "actions": ["audit:read"],
            "condition": {"attr": "resource.x", "op": "like", "value": 1},
        },
    )
    assert bad.status_code == 422
    assert "condition.op" in bad.text
    assert (await client.get("/api/v1/authz/policies", headers=approver)).status_code == 403
    listed = (await client.get("/api/v1/authz/policies", headers=t.auth)).json()
    assert [p["name"] for p in listed["items"]] == ["small-own-dept"]


async def test_invalidation_reaches_another_process(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """A second engine with its own LISTEN connection stands for another app process."""
    t = await make_tenant()
    other = Authz(
        platform.db,
        platform.expand_actions,
        platform.permissions,
        cache_ttl_s=3600,
        snapshot_ttl_s=3600,
        audit_decisions=False,
    )
    await other.listen()
    try:
        p = Principal("someone", t.tenant.id, roles=frozenset({"viewer"}))
        with tenant_scope(t.tenant):
            assert not (await other.check(p, "audit:read")).allowed
            r = await client.post(
                "/api/v1/identity/roles",
                headers=t.auth,
                json={"name": "viewer", "actions": ["audit:read"]},
            )
            assert r.status_code == 201
            for _ in range(100):
                if (await other.check(p, "audit:read")).allowed:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the other process kept its cached deny")
    finally:
        await other.close()


async def test_every_decision_is_audited(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    _, nobody = await member(client, t, "nobody", [])
    assert (await client.get("/api/v1/identity/users", headers=nobody)).status_code == 403
    assert (await client.get("/api/v1/identity/users", headers=t.auth)).status_code == 200
    buffer: AuditBuffer = platform.use(AuditBuffer)
    await buffer.flush()
    flt = '{"filters":[{"field":"action","op":"eq","value":"authz.decision"}]}'
    r = await client.get(
        "/api/v1/audit/events", params={"filter": flt, "limit": 20}, headers=t.auth
    )
    items = r.json()["items"]
    outcomes = {(e["outcome"], e["details"]["action"], e["details"]["policy"]) for e in items}
    assert ("deny", "identity:admin", "default:deny") in outcomes
    assert ("allow", "identity:admin", "role:admin") in outcomes
    assert all(e["request_id"] for e in items)


async def test_decision_in_a_write_unit_of_work_is_audited_in_it(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    p = Principal("u1", t.tenant.id, roles=frozenset({"admin"}))
    res = Resource("thing", "rolled-back")
    with tenant_scope(t.tenant, p), contextlib.suppress(RuntimeError):
        async with platform.db.unit_of_work() as uow:
            assert (await authz.check(p, "identity:admin", res, uow=uow)).allowed
            raise RuntimeError("the write fails")
    with tenant_scope(t.tenant, p):
        async with platform.db.unit_of_work() as uow:
            await authz.check(p, "identity:admin", Resource("thing", "kept"), uow=uow)
    log = platform.use(AuditLog)
    rows = await log.events(t.tenant, before_seq=None, limit=100, action="authz.decision")
    resources = {r["resource"] for r in rows}
    assert "thing:kept" in resources
    assert "thing:rolled-back" not in resources


async def test_platform_admin_only_in_the_operator_tenant(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    p = Principal("boss", t.tenant.id, roles=frozenset({"admin"}))
    with tenant_scope(t.tenant, p):
        d = await authz.check(p, PLATFORM_ADMIN)
    assert not d.allowed
    other = Principal("boss", t.tenant.id, roles=frozenset({"admin"}))
    wrong = await make_tenant()
    with tenant_scope(wrong.tenant, other):
        d = await authz.check(other, "identity:admin")
    assert d.policy == "default:wrong-tenant"
