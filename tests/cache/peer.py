"""A second process for the cross-process test: reads keys through its own cache (with L1)
on commands from stdin (``get KEY``), printing one JSON line per answer."""

from __future__ import annotations

import asyncio
import sys
from uuid import UUID

import orjson

from tenantry.capabilities.cache.api import CacheSettings, build_cache
from tenantry.kernel.config import load_settings
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope


async def main(tenant_id: str) -> None:
    platform = Platform.build(load_settings())
    cache = build_cache(platform.db, CacheSettings())
    await cache.start()
    tenant = await platform.catalog.get(UUID(tenant_id))
    assert tenant is not None
    loop = asyncio.get_running_loop()
    print(orjson.dumps({"ready": True}).decode(), flush=True)
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "quit":
                break
            _, key = line.split()
            with tenant_scope(tenant):
                value = await cache.get(key)
            hits = sum(v for (_, _, r), v in _hits(cache).items() if r == "l1_hit")
            print(orjson.dumps({"value": value, "l1_hits": hits}).decode(), flush=True)
    finally:
        await cache.close()
        await platform.close()


def _hits(cache: object) -> dict[tuple[str, str, str], float]:
    from tenantry.kernel.observability import metrics

    out: dict[tuple[str, str, str], float] = {}
    for metric in metrics.CACHE_REQUESTS.collect():
        for s in metric.samples:
            if s.name.endswith("_total"):
                key = (s.labels["backend"], s.labels["prefix"], s.labels["result"])
                out[key] = s.value
    return out


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
