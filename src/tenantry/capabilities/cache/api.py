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
    sweep_interval_s = 300        # expired rows deleted this often (every process)
    enabled = true                # false: read paths bypass the cache (benches, debugging)

Expired rows are removed every ``sweep_interval_s`` by a loop of each serving process
(``cache-sweep``); the read paths' warmers run as the maintenance job ``cache-warm`` (at
start-up, then every ``observability.maintenance_interval_s``) and on ``tenantry cache warm``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

_log = logging.getLogger("tenantry.cache")


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
    #: Seconds between sweeps of expired rows (each serving process).
    sweep_interval_s: float = Field(default=300.0, gt=0)
    #: False: every read path loads from its source (no cache reads or writes).
    enabled: bool = True


def build_cache(db: Database, settings: CacheSettings) -> Cache:
    backend: CacheBackend
    if settings.backend == "redis":
        from tenantry.capabilities.cache.redis_backend import RedisBackend

        backend = RedisBackend(settings.redis_url)
    else:
        backend = PgBackend(db, origin="")
    cache = Cache(backend, db, l1_size=settings.l1_size, l1_ttl_s=settings.l1_ttl_s)
    cache.enabled = settings.enabled
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
        #: Background tasks per started platform (the module object is shared by every
        #: platform a process builds: tests build several).
        self._tasks: dict[int, list[asyncio.Task[Any]]] = {}

    def setup(self, registrar: Registrar) -> None:
        self.settings = registrar.settings.section(self.name, CacheSettings)
        cache = self.cache = build_cache(registrar.db, self.settings)
        registrar.provide(Cache, cache)
        catalog = registrar.catalog

        async def cache_warm() -> dict[str, int]:
            return await cache.warm(await catalog.ready())

        registrar.add_maintenance("cache-warm", cache_warm)

    async def startup(self, platform: Platform) -> None:
        cache = platform.use(Cache)
        settings = platform.settings.section(self.name, CacheSettings)
        await cache.start()

        async def flush_loop() -> None:
            while True:
                await asyncio.sleep(settings.stats_flush_s)
                with contextlib.suppress(Exception):
                    await cache.flush_stats()

        async def sweep_loop() -> None:
            while True:
                await asyncio.sleep(settings.sweep_interval_s)
                try:
                    await sweep(cache, settings)
                except Exception as exc:
                    _log.warning("cache sweep failed: %r", exc)
                    platform.observability.capture_exception(exc, {"job": "cache-sweep"}, "job")

        self._tasks[id(platform)] = [
            asyncio.create_task(flush_loop()),
            asyncio.create_task(sweep_loop()),
        ]

    async def shutdown(self, platform: Platform) -> None:
        tasks = self._tasks.pop(id(platform), [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await platform.use(Cache).close()


async def sweep(cache: Cache, settings: CacheSettings) -> int:
    """One sweep of expired entries, ``sweep_batch`` rows per statement (the loop of
    ``CacheModule.startup`` runs it every ``sweep_interval_s``)."""
    cache.sweeps += 1
    return await cache.backend.sweep(settings.sweep_batch)


module = CacheModule()
