"""Plans and entitlements: quotas in one call (402/403 naming the limit), per-tenant
overrides, module endpoints gated by plan."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tenantry.capabilities.entitlements import NotEntitled, QuotaExceeded, check
from tenantry.capabilities.entitlements.plans import Plans, build
from tenantry.kernel.platform import Platform
from tests.capabilities.test_authz_platform_actions import client_token, operator_tenant
from tests.conftest import PASSWORD, MakeTenant


def test_check_names_the_limit() -> None:
    plan = build("free", {"rate_per_s": 1, "burst": 1, "quotas": {"max_users": 2, "x": 0}})
    check(plan, "max_users", 1)
    with pytest.raises(QuotaExceeded) as exc:
        check(plan, "max_users", 2)
    assert exc.value.status == 402
    assert exc.value.extra["limit"] == "max_users"
    with pytest.raises(NotEntitled):
        check(plan, "x", 0)
    check(plan, "unlisted", 10**9)  # absent: unlimited


async def test_max_users_is_enforced(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    plans: Plans = platform.use(Plans)
    await plans.set_override(t.tenant, {"quotas": {"max_users": 2}})

    async def add(i: int) -> httpx.Response:
        return await client.post(
            "/api/v1/identity/users",
            headers=t.auth,
            json={"email": f"q{i}@{t.tenant.slug}.test", "password": PASSWORD, "roles": []},
        )

    assert (await add(1)).status_code == 201  # the admin + 1 = 2
    r = await add(2)
    assert r.status_code == 402
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/quota-exceeded")
    assert body["limit"] == "max_users"
    assert body["allowed"] == 2
    assert body["used"] == 2
    await plans.set_override(t.tenant, {"quotas": {"max_users": 0}})
    r = await add(3)
    assert r.status_code == 403
    assert r.json()["type"].endswith("/not-entitled")
    plan = (await client.get("/api/v1/entitlements/plan", headers=t.auth)).json()
    assert plan["quotas"]["max_users"] == 0
    assert plan["overridden"] is True
    assert plan["name"] == "free"


async def test_module_endpoints_follow_the_plan(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    assert (await client.get("/api/v1/ledger/accounts", headers=t.auth)).status_code == 200
    plans: Plans = platform.use(Plans)
    await plans.set_override(t.tenant, {"modules": ["reporting"]})
    r = await client.get("/api/v1/ledger/accounts", headers=t.auth)
    assert r.status_code == 403
    assert r.json()["limit"] == "module:ledger"
    # identity and the capabilities stay reachable whatever the plan
    assert (await client.get("/api/v1/identity/me", headers=t.auth)).status_code == 200


async def test_only_operators_override_plans(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r = await client.put(
        f"/api/v1/entitlements/tenants/{t.tenant.slug}/override", headers=t.auth, json={}
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"quotas": {"max_users": False}},  # lax int took false as 0
        {"quotas": {"max_users": "5"}},
        {"burst": True},
        {"burst": 2.5},
        {"rate_per_s": "10"},
        {"rate_per_s": 9223372036854775806},  # a float 2^63: beyond what JSON numbers hold here
        {"routes": {"POST /api/v1/exports": {"rate_per_s": 1, "burst": "3"}}},
        {"nope": 1},
    ],
)
async def test_an_override_takes_json_types_exactly(
    client: httpx.AsyncClient,
    platform: Platform,
    make_tenant: MakeTenant,
    body: dict[str, Any],
) -> None:
    """The override body means what its schema says: no string, boolean or fraction for an
    integer, no string for a number (the plan config, read from TOML and the environment,
    converts them; the API does not)."""
    t = await make_tenant()
    auth = await client_token(platform, client, await operator_tenant(platform), ["admin"])
    url = f"/api/v1/entitlements/tenants/{t.tenant.slug}/override"
    r = await client.put(url, headers=auth, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"]
    ok = await client.put(url, headers=auth, json={"quotas": {"max_users": 7.0}, "burst": None})
    assert ok.status_code == 200, ok.text
    assert ok.json()["quotas"]["max_users"] == 7
