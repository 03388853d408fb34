"""Platform actions are granted only inside the operator tenant, by nothing a tenant controls
(issue 12 item 1).

A matrix: every tenant-writable authorization surface x every platform route. The platform
routes are discovered from the OpenAPI document (the operations whose ``require()``
dependencies check a platform action, ``x-tenantry-permissions``). For each surface, each
grant that would reach a platform action is refused at write time (422 naming it, nothing
saved); then the same grant is planted in the database by SQL (a row from before the rule, or
written behind the API's back) and every principal of the tenant (its admin, a member holding
the planted role, an API client) still gets 403 on every platform route and no platform scope
in a new token, while the operator tenant's admin still gets through.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tenantry.capabilities.authz.engine import Authz
from tenantry.kernel.auth.actions import is_platform_action
from tenantry.kernel.auth.clients import ClientIssuer
from tenantry.kernel.db.privileged import tenant_unit_of_work
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode, Tenant
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tests.conftest import PASSWORD, MakeTenant, TenantFixture, get_token

#: Grants that reach a platform action, as a tenant would write them. ``plat*`` is not a
#: pattern the engine knows (only ``*`` and ``namespace:*``), but it must not be stored either.
WILDCARDS = ["*", "platform:*", "plat*"]
MEMBER_ROLE = "member-role"
POLICY = "escalate"

INSERT_POLICY = """
INSERT INTO authz_policies (tenant_id, name, effect, actions, roles, condition)
VALUES ($1, $2, 'allow', $3, $4, $5)
"""
DELETE_POLICY = "DELETE FROM authz_policies WHERE name = $1"
COUNT_POLICIES = "SELECT count(*) FROM authz_policies WHERE name = $1"
INSERT_ROLE = "INSERT INTO roles (tenant_id, name, actions) VALUES ($1, $2, $3)"
DELETE_ROLE = "DELETE FROM roles WHERE name = $1"
COUNT_ROLES = "SELECT count(*) FROM roles WHERE name = $1"
ROLE_ACTIONS = "SELECT actions FROM roles WHERE name = $1"
SET_ROLE_ACTIONS = "UPDATE roles SET actions = $2 WHERE name = $1"
UPSERT_ATTRIBUTES = """
INSERT INTO authz_attributes (tenant_id, subject, attributes) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, subject) DO UPDATE SET attributes = EXCLUDED.attributes
"""
GIVE_ROLE = """
UPDATE tenantry.memberships SET roles = array_append(array_remove(roles, $2), $2)
WHERE user_id = $1::uuid
"""
SELECT_ATTRIBUTES = "SELECT attributes FROM authz_attributes WHERE subject = $1"
DELETE_ATTRIBUTES = "DELETE FROM authz_attributes WHERE subject = $1"


# -- platform routes, from the OpenAPI document --------------------------------------------------
@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    url: str
    has_body: bool


def platform_operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation whose required permissions include a platform action; path parameters
    filled with values that name nothing (integers where the schema says so)."""
    found = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or not any(
                is_platform_action(p) for p in op.get("x-tenantry-permissions", ())
            ):
                continue
            url = path
            for param in op.get("parameters", ()):
                if param.get("in") == "path":
                    kind = param.get("schema", {}).get("type")
                    value = "987654321" if kind == "integer" else "authz-probe-nothing"
                    url = url.replace("{" + param["name"] + "}", value)
            assert "{" not in url, url
            found.append(Operation(method.upper(), path, url, "requestBody" in op))
    return found


async def call(client: httpx.AsyncClient, op: Operation, headers: dict[str, str]) -> int:
    # A body no route accepts (a JSON array): whoever passes the permission check gets a 422
    # (or a 404 for a path that names nothing), so the probe never changes the platform.
    body = b"[]" if op.has_body else None
    h = {**headers, "Content-Type": "application/json"} if body is not None else headers
    for _ in range(50):
        r = await client.request(op.method, op.url, headers=h, content=body)
        if r.status_code != 429:  # the operator tenant is on the free plan
            return r.status_code
        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
    raise AssertionError(f"{op.method} {op.url} kept answering 429")


@pytest.fixture(scope="module")
async def operations(client: httpx.AsyncClient) -> list[Operation]:
    doc = (await client.get("/openapi.json")).json()
    ops = platform_operations(doc)
    found = {(o.method, o.path) for o in ops}
    # The discovery works: what the issue names is found, and every /platform route is in.
    for known in [
        ("POST", "/api/v1/platform/tenants"),
        ("GET", "/api/v1/platform/errors"),
        ("GET", "/api/v1/platform/slo"),
        ("GET", "/api/v1/entitlements/plans"),
        ("PUT", "/api/v1/entitlements/tenants/{slug}/override"),
        ("PUT", "/api/v1/flags/{name}"),
    ]:
        assert known in found, known
    for path, item in doc["paths"].items():
        if path.startswith("/api/v1/platform/"):
            assert all((m.upper(), path) in found for m in item), path
    return ops


# -- principals ---------------------------------------------------------------------------------
async def operator_tenant(platform: Platform) -> Tenant:
    slug = platform.settings.tenancy.operator_tenant
    tenant = await platform.catalog.by_slug(slug)
    if tenant is None:
        res = await platform.provisioner.create(
            ProvisionRequest(
                slug,
                "Operators",
                IsolationMode.SHARED,
                "free",
                # The admin the other operator-tenant tests log in as, whoever creates it.
                options={"admin_email": "root@operator.test", "admin_password": PASSWORD},
            )
        )
        tenant = res.tenant
    return tenant


async def client_token(
    platform: Platform, client: httpx.AsyncClient, tenant: Tenant, roles: list[str]
) -> dict[str, str]:
    c, secret = await platform.use(ClientIssuer).create_client(tenant, "authz-probe", roles)
    r = await client.post(
        "/api/v1/identity/token",
        data={
            "grant_type": "client_credentials",
            "client_id": c.client_id,
            "client_secret": secret,
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
async def operator_auth(platform: Platform, client: httpx.AsyncClient) -> dict[str, str]:
    return await client_token(platform, client, await operator_tenant(platform), ["admin"])


@dataclass
class Setup:
    t: TenantFixture
    member_id: str
    member_email: str


async def tenant_with_member(client: httpx.AsyncClient, make_tenant: MakeTenant) -> Setup:
    t = await make_tenant(plan="enterprise")  # a few hundred requests: above free's burst
    r = await client.post(
        "/api/v1/identity/roles",
        headers=t.auth,
        json={"name": MEMBER_ROLE, "actions": ["audit:read"]},
    )
    assert r.status_code == 201, r.text
    email = f"member@{t.tenant.slug}.test"
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": email, "password": PASSWORD, "roles": [MEMBER_ROLE]},
    )
    assert r.status_code == 201, r.text
    return Setup(t, r.json()["id"], email)


async def tenant_callers(
    platform: Platform, client: httpx.AsyncClient, s: Setup
) -> dict[str, dict[str, str]]:
    """New tokens (scopes are fixed when a token is issued) of the tenant's principals."""
    slug = s.t.tenant.slug
    admin = await get_token(client, s.t.admin_email, PASSWORD, slug)
    member = await get_token(client, s.member_email, PASSWORD, slug)
    return {
        "admin": {"Authorization": f"Bearer {admin}"},
        "member": {"Authorization": f"Bearer {member}"},
        "client": await client_token(platform, client, s.t.tenant, ["admin", MEMBER_ROLE]),
    }


# -- the surfaces -------------------------------------------------------------------------------
Attempt = Callable[[httpx.AsyncClient, Setup, str], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Surface:
    name: str
    attempt: Attempt
    #: Is anything of the attempt stored? (SQL, in the tenant's store.)
    saved: Callable[[Platform, Setup, str], Awaitable[bool]]
    plant: Callable[[Platform, Setup, str], Awaitable[None]]
    unplant: Callable[[Platform, Setup], Awaitable[None]]
    #: Refuses only names in the platform namespace (attributes are data, not grants:
    #: a wildcard there grants nothing and is kept).
    names_only: bool = False


async def _sql(platform: Platform, s: Setup, sql: str, *args: Any) -> Any:
    async with tenant_unit_of_work(platform.db, s.t.tenant) as uow:
        return await uow.fetchval(sql, *args)


def _policy_surface(name: str, condition: dict[str, Any] | None, roles: list[str]) -> Surface:
    async def attempt(c: httpx.AsyncClient, s: Setup, grant: str) -> httpx.Response:
        body: dict[str, Any] = {"effect": "allow", "actions": [grant], "roles": roles}
        if condition is not None:
            body["condition"] = condition
        return await c.put(f"/api/v1/authz/policies/{POLICY}", headers=s.t.auth, json=body)

    async def saved(p: Platform, s: Setup, _grant: str) -> bool:
        return bool(await _sql(p, s, COUNT_POLICIES, POLICY))

    async def plant(p: Platform, s: Setup, grant: str) -> None:
        await _sql(p, s, INSERT_POLICY, s.t.tenant.id, POLICY, [grant], roles, condition)
        if condition is not None:  # the attribute the condition reads
            await _sql(p, s, UPSERT_ATTRIBUTES, s.t.tenant.id, s.member_id, {"tier": "gold"})

    async def unplant(p: Platform, s: Setup) -> None:
        await _sql(p, s, DELETE_POLICY, POLICY)
        await _sql(p, s, DELETE_ATTRIBUTES, s.member_id)

    return Surface(name, attempt, saved, plant, unplant)


async def _create_role(c: httpx.AsyncClient, s: Setup, grant: str) -> httpx.Response:
    return await c.post(
        "/api/v1/identity/roles", headers=s.t.auth, json={"name": "escalate", "actions": [grant]}
    )


async def _role_saved(p: Platform, s: Setup, _grant: str) -> bool:
    return bool(await _sql(p, s, COUNT_ROLES, "escalate"))


async def _plant_role(p: Platform, s: Setup, grant: str) -> None:
    # A new role with the grant, given to the member (member roles are names, checked to
    # exist; the row exists now).
    await _sql(p, s, INSERT_ROLE, s.t.tenant.id, "escalate", [grant])
    await _sql(p, s, GIVE_ROLE, s.member_id, "escalate")


async def _unplant_role(p: Platform, s: Setup) -> None:
    await _sql(p, s, DELETE_ROLE, "escalate")


async def _replace_role(c: httpx.AsyncClient, s: Setup, grant: str) -> httpx.Response:
    return await c.put(
        f"/api/v1/identity/roles/{MEMBER_ROLE}",
        headers=s.t.auth,
        json={"actions": ["audit:read", grant]},
    )


async def _replaced(p: Platform, s: Setup, _grant: str) -> bool:
    return list(await _sql(p, s, ROLE_ACTIONS, MEMBER_ROLE)) != ["audit:read"]


async def _plant_replace(p: Platform, s: Setup, grant: str) -> None:
    await _sql(p, s, SET_ROLE_ACTIONS, MEMBER_ROLE, ["audit:read", grant])


async def _unplant_replace(p: Platform, s: Setup) -> None:
    await _sql(p, s, SET_ROLE_ACTIONS, MEMBER_ROLE, ["audit:read"])


def _claims(grant: str) -> dict[str, Any]:
    """Attributes that look like grants: nothing reads them as such."""
    return {
        "scopes": [grant],
        "actions": [grant],
        "permissions": {grant: True},
        "roles": ["admin", grant],
        "kind": grant,
        "tier": "gold",
    }


async def _put_attributes(c: httpx.AsyncClient, s: Setup, grant: str) -> httpx.Response:
    return await c.put(
        f"/api/v1/authz/subjects/{s.member_id}/attributes", headers=s.t.auth, json=_claims(grant)
    )


async def _attributes_saved(p: Platform, s: Setup, _grant: str) -> bool:
    return await _sql(p, s, SELECT_ATTRIBUTES, s.member_id) is not None


async def _plant_attributes(p: Platform, s: Setup, grant: str) -> None:
    await _sql(p, s, UPSERT_ATTRIBUTES, s.t.tenant.id, s.member_id, _claims(grant))


async def _unplant_attributes(p: Platform, s: Setup) -> None:
    await _sql(p, s, DELETE_ATTRIBUTES, s.member_id)


SURFACES = [
    _policy_surface("policy", None, []),
    _policy_surface("policy-for-a-role", None, [MEMBER_ROLE]),
    _policy_surface("abac-policy", {"attr": "principal.tier", "op": "eq", "value": "gold"}, []),
    Surface("custom-role", _create_role, _role_saved, _plant_role, _unplant_role),
    Surface("role-replace", _replace_role, _replaced, _plant_replace, _unplant_replace),
    Surface(
        "attributes",
        _put_attributes,
        _attributes_saved,
        _plant_attributes,
        _unplant_attributes,
        names_only=True,
    ),
]


def grants(platform: Platform) -> list[str]:
    declared = sorted(a for a in platform.permissions if is_platform_action(a))
    assert declared, "no platform action declared"
    return [*declared, *WILDCARDS]


def engine(platform: Platform) -> Authz:
    authz: Authz = platform.use(Authz)
    return authz


@pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
async def test_no_tenant_surface_grants_a_platform_action(
    platform: Platform,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    operations: list[Operation],
    operator_auth: dict[str, str],
    surface: Surface,
) -> None:
    s = await tenant_with_member(client, make_tenant)
    failures: list[str] = []
    for grant in grants(platform):
        # 1. Write time: refused, naming the grant; nothing saved.
        r = await surface.attempt(client, s, grant)
        if surface.names_only and not is_platform_action(grant):
            assert r.status_code == 200, r.text
            await surface.unplant(platform, s)
        else:
            assert r.status_code == 422, f"{surface.name} accepted {grant!r}: {r.text}"
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            assert grant in problem["detail"]
            named = [e for e in problem["errors"] if grant in e.get("message", "")]
            assert named, problem
            assert all(e.get("field") for e in named), problem
            assert not await surface.saved(platform, s, grant), f"{surface.name} saved {grant!r}"
        # 2. Decision time: the same grant planted by SQL does not reach any platform route.
        await surface.plant(platform, s, grant)
        engine(platform).invalidate(s.t.tenant.id)  # as a process starting with the row
        try:
            for who, headers in (await tenant_callers(platform, client, s)).items():
                me = (await client.get("/api/v1/identity/me", headers=headers)).json()
                leaked = [sc for sc in me["scopes"] if is_platform_action(sc)]
                if leaked:
                    failures.append(f"{surface.name}/{grant} {who}: token scopes {leaked}")
                for op in operations:
                    status = await call(client, op, headers)
                    if status != 403:
                        failures.append(
                            f"{surface.name}/{grant} {who}: {op.method} {op.url} {status}"
                        )
        finally:
            await surface.unplant(platform, s)
            engine(platform).invalidate(s.t.tenant.id)
    assert not failures, "\n".join(failures)
    # The operator tenant's admin still gets through every platform route.
    for op in operations:
        status = await call(client, op, operator_auth)
        assert status not in (401, 403), (op, status)


async def test_wildcards_keep_working_for_tenant_actions(
    platform: Platform,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    operations: list[Operation],
) -> None:
    s = await tenant_with_member(client, make_tenant)
    r = await client.put(
        f"/api/v1/identity/roles/{MEMBER_ROLE}", headers=s.t.auth, json={"actions": []}
    )
    assert r.status_code == 200, r.text
    callers = await tenant_callers(platform, client, s)
    url = "/api/v1/identity/users"
    assert (await client.get(url, headers=callers["member"])).status_code == 403
    # A namespace wildcard in a policy is accepted and grants the namespace.
    r = await client.put(
        f"/api/v1/authz/policies/{POLICY}",
        headers=s.t.auth,
        json={"effect": "allow", "actions": ["identity:*"], "roles": [MEMBER_ROLE]},
    )
    assert r.status_code == 200, r.text
    engine(platform).invalidate(s.t.tenant.id)
    assert (await client.get(url, headers=callers["member"])).status_code == 200
    # A ``*`` already in the database (planted) still grants every tenant action, and no
    # platform action.
    await _sql(platform, s, DELETE_POLICY, POLICY)
    await _sql(platform, s, INSERT_POLICY, s.t.tenant.id, POLICY, ["*"], [], None)
    engine(platform).invalidate(s.t.tenant.id)
    assert (await client.get(url, headers=callers["member"])).status_code == 200
    assert (await client.get("/api/v1/audit/events", headers=callers["member"])).status_code == 200
    for op in operations:
        assert await call(client, op, callers["member"]) == 403, op
    # Deny policies may name anything (they cannot grant): ``*`` denies every tenant action.
    r = await client.put(
        "/api/v1/authz/policies/lock",
        headers=s.t.auth,
        json={"effect": "deny", "actions": ["*"], "roles": [MEMBER_ROLE]},
    )
    assert r.status_code == 200, r.text
    engine(platform).invalidate(s.t.tenant.id)
    assert (await client.get(url, headers=callers["member"])).status_code == 403


async def test_in_the_operator_tenant_roles_grant_platform_actions_and_policies_do_not(
    platform: Platform,
    client: httpx.AsyncClient,
    operations: list[Operation],
    operator_auth: dict[str, str],
) -> None:
    tenant = await operator_tenant(platform)
    # A role of the operator tenant may hold platform:admin (how on-call operators get it).
    r = await client.post(
        "/api/v1/identity/roles",
        headers=operator_auth,
        json={"name": "oncall-probe", "actions": ["platform:admin"]},
    )
    assert r.status_code in (201, 409), r.text
    oncall = await client_token(platform, client, tenant, ["oncall-probe"])
    me = (await client.get("/api/v1/identity/me", headers=oncall)).json()
    assert "platform:admin" in me["scopes"]
    for op in operations:
        assert await call(client, op, oncall) not in (401, 403), op
    # A policy is not how a platform action is granted, not even here.
    r = await client.put(
        "/api/v1/authz/policies/everyone-operates",
        headers=operator_auth,
        json={"effect": "allow", "actions": ["platform:admin"]},
    )
    assert r.status_code == 422, r.text
    assert "platform:admin" in r.json()["detail"]
    nobody = await client_token(platform, client, tenant, [])
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        await uow.execute(INSERT_POLICY, tenant.id, "planted-everyone", ["*"], [], None)
    engine(platform).invalidate(tenant.id)
    try:
        for op in operations:
            assert await call(client, op, nobody) == 403, op
    finally:
        async with tenant_unit_of_work(platform.db, tenant) as uow:
            await uow.execute(DELETE_POLICY, "planted-everyone")
        engine(platform).invalidate(tenant.id)


def test_the_problem_names_the_field_and_the_action() -> None:
    from tenantry.kernel.auth.actions import (
        PlatformActionRefused,
        grants_platform_action,
        refuse_platform_grants,
    )

    for grant in ["platform:admin", "platform:*", "*", "p*", "plat*", "platform:x:*", "platform"]:
        assert grants_platform_action(grant), grant
    for grant in ["ledger:*", "ledger:write", "audit:read", "x*", "*:*", "platforms:*"]:
        assert not grants_platform_action(grant), grant
    with pytest.raises(PlatformActionRefused) as info:
        refuse_platform_grants(["ledger:read", "*", "platform:admin"])
    assert info.value.errors is not None
    assert [(e["field"], e["action"]) for e in info.value.errors] == [
        ("actions.1", "*"),
        ("actions.2", "platform:admin"),
    ]
    assert re.search(r"'\*'.*'platform:admin'", info.value.detail)
