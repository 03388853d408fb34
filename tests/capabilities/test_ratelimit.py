"""Rate limits: the GCRA rule, both backends (one contract), HTTP headers and 429s, per-route
limits, and a noisy tenant that does not slow the others down."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tenantry.capabilities.entitlements.plans import Plans
from tenantry.capabilities.ratelimit import Limiter, MemoryLimiter, RedisLimiter, gcra
from tenantry.kernel.observability import metrics
from tenantry.kernel.platform import Platform
from tests.conftest import MakeTenant
from tests.services import REDIS_URL, require_redis


def test_gcra_burst_then_steady_rate() -> None:
    tat, now = 0.0, 100.0
    seen = []
    for _ in range(4):
        v, tat = gcra(tat, now, rate=10, burst=3)
        seen.append((v.allowed, v.remaining))
    assert seen == [(True, 2), (True, 1), (True, 0), (False, 0)]
    v, _ = gcra(tat, now, rate=10, burst=3)
    assert v.retry_after_s == pytest.approx(0.1)
    v, tat = gcra(tat, now + 0.1, rate=10, burst=3)
    assert v.allowed


async def connect_redis() -> RedisLimiter:
    """The local Redis; a skip without it, but a failure in CI (CI=true), where it must be."""
    await require_redis()
    return RedisLimiter(REDIS_URL, prefix=f"tenantry-test:{os.getpid()}:{time.time_ns()}:")


@pytest.fixture
async def redis_limiter() -> AsyncIterator[RedisLimiter]:
    limiter = await connect_redis()
    yield limiter
    await limiter.close()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    lim: Limiter = MemoryLimiter() if request.param == "memory" else await connect_redis()
    yield lim
    await lim.close()


async def test_backend_contract(limiter: Limiter) -> None:
    verdicts = [await limiter.hit("k", 20, 3) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert 0 < verdicts[3].retry_after_s <= 0.06
    assert verdicts[0].limit == 3
    assert (await limiter.hit("other", 20, 3)).allowed  # keys are independent
    await asyncio.sleep(0.06)
    assert (await limiter.hit("k", 20, 3)).allowed


async def test_redis_buckets_are_shared_by_processes(redis_limiter: RedisLimiter) -> None:
    other = RedisLimiter(REDIS_URL, prefix=redis_limiter.prefix)  # another process's client
    try:
        got = [await (redis_limiter if i % 2 else other).hit("shared", 1, 3) for i in range(4)]
        assert [v.allowed for v in got] == [True, True, True, False]
    finally:
        await other.close()


async def override(platform: Platform, tenant: object, **plan: object) -> None:
    plans: Plans = platform.use(Plans)
    await plans.set_override(tenant, plan)  # type: ignore[arg-type]


def _rejections(plan: str, limit: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "tenantry_ratelimit_rejections_total", {"plan": plan, "scope": limit}
    )
    return value or 0.0


async def test_headers_and_429(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    other = await make_tenant()
    await override(platform, t.tenant, rate_per_s=0.5, burst=3)
    got = [await client.get("/api/v1/identity/me", headers=t.auth) for _ in range(4)]
    assert [r.status_code for r in got] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in got] == ["2", "1", "0", "0"]
    assert all(r.headers["ratelimit-limit"] == "3" for r in got)
    refused = got[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert int(refused.headers["ratelimit-reset"]) >= 1
    assert (await client.get("/api/v1/identity/me", headers=other.auth)).status_code == 200


async def test_per_route_limit(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    await override(
        platform, t.tenant, routes={"GET /api/v1/identity/me": {"rate_per_s": 0.5, "burst": 1}}
    )
    before = _rejections(t.tenant.plan, "route:GET /api/v1/identity/me")
    assert (await client.get("/api/v1/identity/me", headers=t.auth)).status_code == 200
    assert (await client.get("/api/v1/identity/me", headers=t.auth)).status_code == 429
    # /metrics counts the rejection by plan and limit (never by tenant).
    assert _rejections(t.tenant.plan, "route:GET /api/v1/identity/me") == before + 1
    r = await client.get("/api/v1/identity/roles", headers=t.auth)
    assert r.status_code == 200
    assert r.headers["ratelimit-limit"] == "100"  # the plan's own bucket


async def test_noisy_tenant_does_not_slow_the_others(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    noisy, quiet = await make_tenant(), await make_tenant()
    await override(platform, noisy.tenant, rate_per_s=5, burst=5)
    url = "/api/v1/identity/roles"  # one query per allowed request

    async def timed(headers: dict[str, str]) -> tuple[int, float]:
        t0 = time.perf_counter()
        r = await client.get(url, headers=headers)
        return r.status_code, time.perf_counter() - t0

    async def quiet_run() -> list[tuple[int, float]]:
        out = []
        for _ in range(20):
            out.append(await timed(quiet.auth))
            await asyncio.sleep(0.005)
        return out

    alone = await quiet_run()
    flood = [timed(noisy.auth) for _ in range(300)]
    noisy_results, loaded = await asyncio.gather(asyncio.gather(*flood), quiet_run())
    assert all(code == 200 for code, _ in alone + loaded)
    allowed = sum(1 for code, _ in noisy_results if code == 200)
    assert sum(1 for code, _ in noisy_results if code == 429) >= 280
    assert allowed <= 12  # the burst plus what the rate refilled while the flood lasted
    base = statistics.median(s for _, s in alone)
    under = statistics.median(s for _, s in loaded)
    # Refused requests cost no database work, so the quiet tenant's median stays in the
    # same range (generous bound: the test shares two cores with other suites).
    assert under < base * 5 + 0.05, (base, under)
