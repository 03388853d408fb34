"""Per-request principal status (token revocation): what the check costs a request.

    .venv/bin/python -m bench.auth_status        # DATABASE_URL, default local :5432

One run, one table (per call, microseconds; median of 7 rounds):
- hit: ``PrincipalStatus.active`` answered from the cache (the path of every request but the
  first per principal and TTL); baseline in the same run: a bare ``dict.get`` of the same key,
  and the token service's verified-token cache hit the middleware already pays;
- miss: the identity module's query in a platform unit of work (cache dropped before each
  call); baseline: ``SELECT 1`` in a platform unit of work on the same pool.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from bench._common import bench_platform, bench_settings, table
from tenantry.kernel.db.privileged import platform_unit_of_work_as
from tenantry.kernel.tenancy.context import Principal

N_HIT = 200_000
N_MISS = 2_000
ROUNDS = 7


async def _per_call_us(fn: Callable[[], Awaitable[object]], n: int) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        times.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(times)


def _sync_per_call_us(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(times)


async def main() -> None:
    platform, tenant = await bench_platform(bench_settings())
    try:
        await platform.start()
        status = platform.principals
        async with platform_unit_of_work_as(platform.db, tenant) as uow:
            user_id = await uow.fetchval(
                "SELECT user_id FROM tenantry.memberships WHERE tenant_id = $1 LIMIT 1", tenant.id
            )
        principal = Principal(str(user_id), tenant.id, "user", frozenset(), frozenset(), "j")
        assert await status.active(tenant, principal)
        token, _ = await platform.tokens.issue(
            subject=str(user_id), tenant_id=tenant.id, roles=[], scopes=[]
        )
        await platform.tokens.verify(token)
        plain = {(tenant.id, principal.subject): (time.monotonic() + 60, True)}
        key = (tenant.id, principal.subject)

        hit = await _per_call_us(lambda: status.active(tenant, principal), N_HIT)
        dict_get = _sync_per_call_us(lambda: plain.get(key), N_HIT)
        verified = await _per_call_us(lambda: platform.tokens.verify(token), N_HIT)

        async def miss() -> bool:
            status.invalidate()
            return await status.active(tenant, principal)

        async def select_1() -> object:
            async with platform_unit_of_work_as(platform.db, tenant) as uow:
                return await uow.fetchval("SELECT 1")

        miss_us = await _per_call_us(miss, N_MISS)
        select_us = await _per_call_us(select_1, N_MISS)
        rows: list[list[object]] = [
            ["cache hit", f"{hit:.3f}", f"{dict_get:.3f}", "dict.get", f"{hit / dict_get:.1f}x"],
            ["cache hit", f"{hit:.3f}", f"{verified:.3f}", "verified-token hit",
             f"{hit / verified:.1f}x"],
            ["miss (query)", f"{miss_us:.0f}", f"{select_us:.0f}", "SELECT 1 in a platform uow",
             f"{miss_us / select_us:.2f}x"],
        ]  # fmt: skip
        header = ["path", "ours", "baseline", "baseline is", "ratio"]
        print(table("principal status per request (us per call, median of 7 rounds)", header, rows))
        print(f"\ngoal: hit < 5 us -> {'met' if hit < 5 else 'NOT met'} ({hit:.3f} us)")
    finally:
        await platform.close()


if __name__ == "__main__":
    asyncio.run(main())
