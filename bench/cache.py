"""Cache get latency in one run: PostgreSQL cache (L1 miss) vs redis-py GET vs L1 hit.

Goal (issue 6): PG <= 1.5x Redis GET on the same transport (TCP to 127.0.0.1 here), L1 hit
< 5 us. One client, sequential awaits (latency), then 16 concurrent tasks (throughput). The
baseline is a bare redis-py GET of the same bytes; the same ``Cache`` facade over the Redis
backend is shown too (tenant from the context, key check, stats, orjson decode).

    .venv/bin/python -m bench.cache [--n 5000]
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


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    asyncio.run(main(args.n, args.rounds))
