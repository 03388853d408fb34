"""Reporting's dashboard metadata (``GET /reporting/dashboard``) through the platform cache
(``reporting:dashboard``, 300 s): a hit issues no query; a fold that adds a day, account or
currency is seen by the next read on this process and on another (its NOTIFY, sent in the
fold's transaction); a tenant never reads another's cached metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tenantry.capabilities.cache.api import CacheSettings, build_cache
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.testing import cache_hits
from tenantry_reporting.infrastructure.cache import SUFFIX, CachedDashboards
from tenantry_reporting.infrastructure.sql import DASHBOARD_CHANNEL
from tenantry_reporting.testing import posted
from tests.conftest import MakeTenant, TenantFixture
from tests.messaging.conftest import eventually

PREFIX = "reporting:dashboard"
DAY = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


async def dashboard(client: httpx.AsyncClient, t: TenantFixture) -> dict[str, Any]:
    r = await client.get("/api/v1/reporting/dashboard", headers=t.auth)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def post(platform: Platform, t: TenantFixture, day: datetime, currency: str) -> None:
    with tenant_scope(t.tenant):
        async with platform.db.unit_of_work() as uow:
            await platform.dispatcher.publish(uow, posted(day, 5, currency))


async def test_a_hit_reads_no_row_and_a_new_currency_is_seen_next(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    empty = await dashboard(client, t)
    assert empty == {"first_day": None, "last_day": None, "accounts": [], "currencies": []}
    await post(platform, t, DAY, "EUR")

    async def has(currency: str) -> bool:
        return currency in (await dashboard(client, t))["currencies"]

    await eventually(lambda: has("EUR"))
    meta = await dashboard(client, t)
    assert (meta["first_day"], meta["last_day"]) == ("2026-05-04", "2026-05-04")
    assert [a["code"] for a in meta["accounts"]] == ["1000", "4000"]
    before = cache_hits(PREFIX)
    async with admin_connection(platform.db, as_owner=False) as conn:  # behind the service
        await conn.execute(
            "UPDATE tenant_shared.reporting_daily SET account_code = '9999' WHERE tenant_id = $1",
            t.tenant.id,
        )
    assert await dashboard(client, t) == meta  # the cache answered: no row was read
    assert cache_hits(PREFIX) == before + 1
    await post(platform, t, datetime(2026, 5, 6, 9, 0, tzinfo=UTC), "EUR")  # a new day

    async def has_day() -> bool:
        last: str | None = (await dashboard(client, t))["last_day"]
        return last == "2026-05-06"

    await eventually(has_day)
    assert "9999" in {a["code"] for a in (await dashboard(client, t))["accounts"]}


async def test_a_fold_reaches_another_process(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """A second cache and listener stand for another process: its cached metadata (in its
    L1) is replaced on its next read after the fold's NOTIFY."""
    t = await make_tenant()
    cache = build_cache(platform.db, CacheSettings())
    await cache.start()
    other = CachedDashboards(cache)
    await platform.db.listen(DASHBOARD_CHANNEL, other.on_notify)
    loads = 0

    async def load() -> dict[str, Any]:
        nonlocal loads
        loads += 1
        return await dashboard(client, t)  # what this process's service reads

    try:
        with tenant_scope(t.tenant):
            first = await other.get(load)
            assert await other.get(load) == first  # its L1
            await post(platform, t, DAY, "CHF")

            async def seen() -> bool:
                return "CHF" in (await other.get(load))["currencies"]

            await eventually(seen)
            assert await cache.get(f"{PREFIX}:{SUFFIX}") is not None
    finally:
        await platform.db.unlisten(DASHBOARD_CHANNEL, other.on_notify)
        await cache.close()
    assert loads >= 2


async def test_a_tenant_never_reads_another_tenant_s_cached_metadata(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    await post(platform, a, DAY, "JPY")

    async def a_has() -> bool:
        return "JPY" in (await dashboard(client, a))["currencies"]

    await eventually(a_has)
    assert "JPY" in (await dashboard(client, a))["currencies"]  # cached for A
    assert (await dashboard(client, b))["currencies"] == []
