"""Cache get latency in one run: PostgreSQL cache (L1 miss) vs redis-py GET vs L1 hit;
with ``--paths``, what each cached hot read gains (``paths``, below).

Goal (issue 6): PG <= 1.5x Redis GET on the same transport (TCP to 127.0.0.1 here), L1 hit
< 5 us. One client, sequential awaits (latency), then 16 concurrent tasks (throughput). The
baseline is a bare redis-py GET of the same bytes; the same ``Cache`` facade over the Redis
backend is shown too (tenant from the context, key check, stats, orjson decode).

    .venv/bin/python -m bench.cache [--n 5000]
    .venv/bin/python -m bench.cache --paths [--n 1000]

``--paths``: each read path of issue 20 through its own service or engine call, in one run
and interleaved rounds: the baseline is the same call with the cache disabled
(``[cache] enabled = false``: the query every time), beside it the cached call served by
the L1 and the cached call served by the PostgreSQL table (a cache without L1), each with
its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from bench._common import bench_platform, bench_settings
from tenantry.capabilities.cache.cache import Cache
from tenantry.capabilities.cache.pg import PgBackend
from tenantry.capabilities.cache.redis_backend import RedisBackend
from tenantry.kernel.tenancy.context import tenant_scope

REDIS_URL = "redis://127.0.0.1:6379/15"
VALUE = {"account": "acc-1", "balance": "1234.56", "currency": "EUR", "version": 42}


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> dict[str, float]:
    for _ in range(min(n // 10, 500)):
        await fn()
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        s = time.perf_counter()
        await fn()
        lat.append(time.perf_counter() - s)
    total = time.perf_counter() - t0
    lat.sort()
    return {
        "ops_s": n / total,
        "p50_us": lat[len(lat) // 2] * 1e6,
        "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
        "mean_us": statistics.fmean(lat) * 1e6,
    }


async def concurrent(fn: Callable[[], Awaitable[Any]], n: int, tasks: int = 16) -> float:
    per = n // tasks

    async def worker() -> None:
        for _ in range(per):
            await fn()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return per * tasks / (time.perf_counter() - t0)


async def main(n: int, rounds: int) -> None:
    settings = bench_settings(database={"pool_min": 4, "pool_max": 16})
    platform, tenant = await bench_platform(settings)
    redis = aioredis.Redis.from_url(REDIS_URL)
    pg_nol1 = Cache(PgBackend(platform.db, "bench"), platform.db, l1_size=0)
    pg_l1 = Cache(PgBackend(platform.db, "bench-l1"), platform.db, l1_size=10_000)
    via_redis = Cache(RedisBackend(REDIS_URL, namespace="bench"), platform.db)
    await pg_l1.start()
    try:
        with tenant_scope(tenant):
            await pg_nol1.set("bench:key", VALUE)
            await redis.set("bench:key", pg_nol1_bytes())
            assert await pg_nol1.get("bench:key") == VALUE
            await pg_l1.get("bench:key")
            await via_redis.set("bench:key", VALUE)
            cases: dict[str, tuple[Callable[[], Awaitable[Any]], int]] = {
                "redis-py GET (raw bytes)": (lambda: redis.get("bench:key"), n),
                "PG cache get, L1 miss": (lambda: pg_nol1.get("bench:key"), n),
                "cache get, Redis backend": (lambda: via_redis.get("bench:key"), n),
                "PG cache get, L1 hit": (lambda: pg_l1.get("bench:key"), n * 20),
            }
            # Rounds interleave the cases so machine noise spreads over all of them; each
            # figure is the median over the rounds.
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
            for _ in range(rounds):
                for name, (fn, count) in cases.items():
                    runs[name].append(await timed(fn, count))
            results = {
                name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                for name, rs in runs.items()
            }
            conc = {
                "redis-py GET (raw bytes)": await concurrent(lambda: redis.get("bench:key"), n),
                "PG cache get, L1 miss": await concurrent(lambda: pg_nol1.get("bench:key"), n),
                "cache get, Redis backend": await concurrent(lambda: via_redis.get("bench:key"), n),
            }
    finally:
        await via_redis.close()
        await pg_l1.close()
        await pg_nol1.close()
        await redis.aclose()
        await platform.close()
    base = results["redis-py GET (raw bytes)"]
    print(
        f"n={n} sequential gets per case (L1 hit: {n * 20}), median of {rounds} interleaved "
        "rounds; TCP 127.0.0.1 for both servers; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'case':28} {'ops/s':>10} {'p50 us':>9} {'p99 us':>9} {'x redis p50':>12} "
        f"{'16-task ops/s':>14}"
    )
    for name, r in results.items():
        c = conc.get(name)
        print(
            f"{name:28} {r['ops_s']:10.0f} {r['p50_us']:9.1f} {r['p99_us']:9.1f} "
            f"{r['p50_us'] / base['p50_us']:12.2f} {'' if c is None else f'{c:14.0f}'}"
        )
    pg, hit = results["PG cache get, L1 miss"], results["PG cache get, L1 hit"]
    print(
        f"PG cache get (L1 miss) / redis-py GET, p50: {pg['p50_us'] / base['p50_us']:.2f}x "
        f"(goal <= 1.5x); L1 hit p50 {hit['p50_us']:.1f} us (goal < 5 us)"
    )


def pg_nol1_bytes() -> bytes:
    import orjson

    return orjson.dumps(VALUE)


async def paths(n: int, rounds: int) -> None:
    """The hot reads of issue 20, uncached vs cached (L1 / PostgreSQL table), same run."""
    from datetime import UTC, datetime, timedelta

    from tenantry.capabilities.authz import Authz
    from tenantry.capabilities.entitlements.plans import Plans
    from tenantry.capabilities.pagination import ListQuery
    from tenantry.capabilities.pagination.cursor import CursorSigner
    from tenantry_identity.infrastructure.cache import CachedProfiles
    from tenantry_identity.module import module as identity
    from tenantry_projects.application.services import ProjectsService
    from tenantry_projects.infrastructure.cache import CachedLists
    from tenantry_projects.infrastructure.lists import PROJECT_FIELDS
    from tenantry_projects.infrastructure.repository import SqlProjectsRepository
    from tenantry_reporting.application.handlers import ReportingHandlers
    from tenantry_reporting.application.services import ReportingService
    from tenantry_reporting.infrastructure.cache import CachedDashboards
    from tenantry_reporting.infrastructure.repository import SqlSummaryRepository
    from tenantry_reporting.testing import posted

    settings = bench_settings(database={"pool_min": 4, "pool_max": 16})
    platform, tenant = await bench_platform(settings)
    db = platform.db
    off = Cache(PgBackend(db, "bench-off"), db, l1_size=0)
    off.enabled = False  # [cache] enabled = false: every read path loads from its source
    l1 = Cache(PgBackend(db, "bench-l1"), db, l1_size=10_000)
    table_only = Cache(PgBackend(db, "bench-pg"), db, l1_size=0)
    await l1.start()
    variants = {"uncached": off, "L1 hit": l1, "PG table hit": table_only}
    assert identity.service is not None
    members = identity.service
    signer = CursorSigner(b"bench-cursor-key-0123456789")
    query = ListQuery.parse(PROJECT_FIELDS, signer, limit=50, scope=str(tenant.id))
    calls: dict[str, dict[str, Callable[[], Awaitable[Any]]]] = {}
    try:
        with tenant_scope(tenant):
            repo = SqlProjectsRepository()
            seed = ProjectsService(db.unit_of_work, repo)
            if not (await seed.projects(query))[0]:
                for i in range(30):
                    await seed.create_project(f"B{i:03d}", f"Bench project {i}", "")
            reporting_rows = SqlSummaryRepository()
            async with db.unit_of_work(readonly=True) as uow:
                meta = await reporting_rows.dashboard(uow)
            if not meta["accounts"]:
                fold = ReportingHandlers(reporting_rows)
                day0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
                for d in range(90):
                    async with db.unit_of_work() as uow:
                        ev = posted(day0 + timedelta(days=d), 100 + d, ("EUR", "USD")[d % 2])
                        await fold.on_transaction_posted(uow, ev, None)  # type: ignore[arg-type]
            async with db.unit_of_work(readonly=True) as uow:
                admin = await uow.fetchval(
                    "SELECT user_id FROM tenantry.memberships ORDER BY created_at LIMIT 1"
                )
            for name, c in variants.items():
                profiles = CachedProfiles(c)
                lists = ProjectsService(db.unit_of_work, repo, CachedLists(c))
                dash = ReportingService(db.unit_of_work, reporting_rows, CachedDashboards(c))
                engine = Authz(
                    db, platform.expand_actions, platform.permissions, snapshot_ttl_s=0, cache=c
                )
                plans = Plans(db, {}, 0.0, None, c)

                async def profile(p: CachedProfiles = profiles) -> Any:
                    members.profiles = p
                    return await members.member_profile(tenant, admin)

                calls[name] = {
                    "identity:profile (300 s)": profile,
                    "projects:list (600 s)": lambda s=lists: s.projects(query),  # type: ignore[misc]
                    "entitlements:settings (3,600 s)": lambda p=plans: p.override(tenant),  # type: ignore[misc]
                    "authz:permissions (60 s)": lambda e=engine: e.load(tenant),  # type: ignore[misc]
                    "reporting:dashboard (300 s)": lambda s=dash: s.dashboard(),  # type: ignore[misc]
                }
            for per in calls.values():  # fill the cache (and check every variant agrees)
                for fn in per.values():
                    await fn()
            runs: dict[tuple[str, str], list[dict[str, float]]] = {}
            for _ in range(rounds):
                for path in calls["uncached"]:
                    for name in variants:
                        runs.setdefault((path, name), []).append(await timed(calls[name][path], n))
    finally:
        members.profiles = None
        for c in variants.values():
            await c.close()
        await platform.close()
    med = {k: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for k, rs in runs.items()}
    print(
        f"n={n} sequential calls per case, median of {rounds} interleaved rounds, one tenant "
        f"(30 projects, 90 summary days, 2 currencies); load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'read path':34} {'uncached p50 us':>16} {'L1 hit p50 us':>14} {'x':>6} "
        f"{'PG table hit p50 us':>20} {'x':>6}"
    )
    for path in calls["uncached"]:
        base = med[(path, "uncached")]["p50_us"]
        hit, pg = med[(path, "L1 hit")]["p50_us"], med[(path, "PG table hit")]["p50_us"]
        print(f"{path:34} {base:16.1f} {hit:14.1f} {base / hit:6.1f} {pg:20.1f} {base / pg:6.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paths", action="store_true", help="the cached hot reads (issue 20)")
    args = ap.parse_args()
    if args.paths:
        asyncio.run(paths(args.n or 1000, args.rounds))
    else:
        asyncio.run(main(args.n or 5000, args.rounds))
