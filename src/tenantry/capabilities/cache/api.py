"""The cache capability's startup object (registered as a module so it gets migrations and
the lifecycle hooks): provides ``Cache`` (``registrar.use(Cache)``, ``platform.use(Cache)``)
from ``[cache]`` config::

    [cache]
    backend = "postgres"          # or "redis"
    redis_url = "redis://127.0.0.1:6379/0"
    l1_size = 10000               # entries; 0 disables the in-process L1
    l1_ttl_s = 60                 # upper bound on an L1 entry's life
    stats_flush_s = 10            # hit/miss counters to tenantry.cache_stats
    sweep_batch = 10000

Expired rows are removed by the observability maintenance job (``cache-sweep``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tenantry.capabilities.cache.cache import Cache
from tenantry.capabilities.cache.pg import PgBackend
from tenantry.kernel.modules import Module

if TYPE_CHECKING:
    from tenantry.capabilities.cache.backend import CacheBackend
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.platform import Platform
    from tenantry.kernel.registrar import Registrar


class CacheSettings(BaseModel):
    """``[cache]``: the platform cache (capabilities/cache)."""

    model_config = ConfigDict(extra="forbid")

    #: ``postgres`` (an UNLOGGED table, no extra service) or ``redis``.
    backend: Literal["postgres", "redis"] = "postgres"
    #: Redis of the ``redis`` backend.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Entries of the per-process L1 cache (0: none).
    l1_size: int = Field(default=10_000, ge=0)
    #: Upper bound of an entry's life in L1 (invalidations reach every process at once).
    l1_ttl_s: float = Field(default=60.0, gt=0)
    #: Seconds between flushes of the hit/miss statistics.
    stats_flush_s: float = Field(default=10.0, gt=0)
    #: Expired rows deleted per sweep statement (postgres backend).
    sweep_batch: int = Field(default=10_000, ge=1)


def build_cache(db: Database, settings: CacheSettings) -> Cache:
    backend: CacheBackend
    if settings.backend == "redis":
        from tenantry.capabilities.cache.redis_backend import RedisBackend

        backend = RedisBackend(settings.redis_url)
    else:
        backend = PgBackend(db, origin="")
    cache = Cache(backend, db, l1_size=settings.l1_size, l1_ttl_s=settings.l1_ttl_s)
    if isinstance(backend, PgBackend):
        backend.origin = cache.origin
    return cache


class CacheModule(Module):
    name = "cache"
    capability = True
    migrations = "tenantry.capabilities.cache.migrations"
    settings_model = CacheSettings

    def __init__(self) -> None:
        self.cache: Cache | None = None
        self._task: asyncio.Task[Any] | None = None

    def setup(self, registrar: Registrar) -> None:
        self.settings = registrar.settings.section(self.name, CacheSettings)
        cache = self.cache = build_cache(registrar.db, self.settings)
        registrar.provide(Cache, cache)
        batch = self.settings.sweep_batch

        async def cache_sweep() -> int:
            return await cache.backend.sweep() if batch else 0

        registrar.add_maintenance("cache-sweep", cache_sweep)

    async def startup(self, platform: Platform) -> None:
        cache = platform.use(Cache)
        await cache.start()

        async def flush_loop() -> None:
            while True:
                await asyncio.sleep(self.settings.stats_flush_s)
                with contextlib.suppress(Exception):
                    await cache.flush_stats()

        self._task = asyncio.create_task(flush_loop())

    async def shutdown(self, platform: Platform) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await platform.use(Cache).close()


module = CacheModule()
