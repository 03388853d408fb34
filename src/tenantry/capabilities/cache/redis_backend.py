"""Redis backend behind the same port: ``tenantry:cache:{tenant}:{key}`` strings with
``SET PX``; a tag is a Redis set per tenant (``tenantry:cache-tag:{tenant}:{tag}``) of the
keys that carry it. Expiry is Redis's own, so ``sweep`` has nothing to do (stale members of
tag sets are dropped when the tag is invalidated)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import redis.asyncio as aioredis

if TYPE_CHECKING:
    from tenantry.kernel.tenancy.audit import PlatformAudit


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, namespace: str = "tenantry") -> None:
        self.client: Any = aioredis.Redis.from_url(url)
        self.ns = namespace

    def _k(self, tenant: UUID, key: str) -> str:
        return f"{self.ns}:cache:{tenant}:{key}"

    def _t(self, tenant: UUID, tag: str) -> str:
        return f"{self.ns}:cache-tag:{tenant}:{tag}"

    async def get(self, tenant: UUID, key: str) -> bytes | None:
        value: bytes | None = await self.client.get(self._k(tenant, key))
        return value

    async def set(
        self, tenant: UUID, key: str, value: bytes, ttl_s: float | None, tags: Sequence[str]
    ) -> None:
        k = self._k(tenant, key)
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        if not tags:
            await self.client.set(k, value, px=px)
            return
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(k, value, px=px)
            for tag in tags:
                pipe.sadd(self._t(tenant, tag), k)
            await pipe.execute()

    async def delete(self, tenant: UUID, key: str) -> bool:
        return bool(await self.client.delete(self._k(tenant, key)))

    async def invalidate_tags(self, tenant: UUID, tags: Sequence[str]) -> int:
        keys: set[bytes] = set()
        for tag in tags:
            keys |= set(await self.client.smembers(self._t(tenant, tag)))
        n = int(await self.client.delete(*keys)) if keys else 0
        await self.client.delete(*(self._t(tenant, t) for t in tags))
        return n

    async def sweep(self, batch: int = 10_000, audit: PlatformAudit | None = None) -> int:
        """Nothing to remove (Redis expires keys itself), so nothing to record."""
        return 0

    async def close(self) -> None:
        await self.client.aclose()
