"""Refusals made by middleware pass through observability: a 429 of the rate limiter and a
403 of the plan's module gate are counted (request histogram) like any answer, and a 402/403
of a quota (a route's dependency) too. The observability middleware is declared first of the
platform's middleware (``Registrar.add_middleware(order=...)``), so every refusal made by
another one is inside it."""

from __future__ import annotations

import httpx

from tenantry.capabilities.entitlements.plans import Plans
from tenantry.kernel.observability import metrics
from tenantry.kernel.platform import Platform
from tests.conftest import PASSWORD, MakeTenant


def _answers(status: int, route: str | None = None) -> float:
    """Requests answered ``status`` so far (on ``route``, or any), as /metrics counts them."""
    return sum(
        sum(row[:-1])
        for (r, _method, s, _plan), row in list(metrics.REQUEST_DURATION.rows.items())
        if s == status and (route is None or r == route)
    )


def _plans(platform: Platform) -> Plans:
    plans: Plans = platform.use(Plans)
    return plans


async def _counted(platform: Platform, status: int) -> float:
    platform.observability.accounting.drain()
    return _answers(status)


async def test_a_rate_limit_refusal_is_counted(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    await _plans(platform).set_override(t.tenant, {"rate_per_s": 0.01, "burst": 1})
    before = await _counted(platform, 429)
    codes = [(await client.get("/api/v1/identity/me", headers=t.auth)).status_code for _ in "ab"]
    assert codes == [200, 429]
    assert await _counted(platform, 429) == before + 1


async def test_a_module_gate_refusal_is_counted(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    await _plans(platform).set_override(t.tenant, {"modules": ["reporting"]})
    before = await _counted(platform, 403)
    r = await client.get("/api/v1/ledger/accounts", headers=t.auth)
    assert r.status_code == 403
    assert r.json()["limit"] == "module:ledger"
    assert await _counted(platform, 403) == before + 1


async def test_a_quota_refusal_is_counted(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    await _plans(platform).set_override(t.tenant, {"quotas": {"max_users": 1}})
    before = await _counted(platform, 402)
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": f"q@{t.tenant.slug}.test", "password": PASSWORD, "roles": []},
    )
    assert r.status_code == 402
    assert await _counted(platform, 402) == before + 1
