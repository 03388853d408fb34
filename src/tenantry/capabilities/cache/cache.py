"""The cache facade: ``get / set / delete / get_or_set / invalidate_tags``.

The tenant always comes from the ambient context (``require_tenant``) and is part of every
key at every level: the L1 dict key, the PostgreSQL primary key (under RLS), the Redis key.
Values are JSON (orjson). With the PostgreSQL backend an in-process L1 (bounded LRU) serves
repeated reads; writes and deletes NOTIFY ``tenantry_cache`` and every process's listener
drops the entry (or the tag's entries) from its L1, so processes stay coherent within the
notification delay. Hits and misses are counted per key prefix (text before the first
``:``), exposed in Prometheus and flushed to ``tenantry.cache_stats``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import orjson

from tenantry.capabilities.cache import sql
from tenantry.capabilities.cache.l1 import L1, MISSING
from tenantry.kernel.observability import metrics
from tenantry.kernel.tenancy.context import require_tenant

if TYPE_CHECKING:
    from tenantry.capabilities.cache.backend import CacheBackend
    from tenantry.kernel.db.database import Database

_log = logging.getLogger("tenantry.cache")
T = TypeVar("T")
MAX_KEY = 1000
MAX_PREFIXES = 200


class Cache:
    def __init__(
        self,
        backend: CacheBackend,
        db: Database,
        *,
        l1_size: int = 10_000,
        l1_ttl_s: float = 60.0,
        origin: str | None = None,
    ) -> None:
        self.backend = backend
        self.db = db
        self.origin = origin or secrets.token_hex(6)
        # L1 only where it can be kept coherent (NOTIFY from the PostgreSQL backend).
        self.l1 = L1(l1_size if backend.name == "postgres" else 0, l1_ttl_s)
        self._stats: dict[str, list[int]] = {}
        #: Labelled Prometheus children by (prefix, result), saving ``labels()`` per lookup.
        self._counters: dict[tuple[str, str], Any] = {}
        self._listening = False
        #: L1 is used only while the invalidation listener is connected.
        self._coherent = False

    # -- the API ------------------------------------------------------------------------------
    async def get(self, key: str, default: Any = None) -> Any:
        tenant = require_tenant().id
        _check(key)
        if self._coherent:
            value = self.l1.get(tenant, key)
            if value is not MISSING:
                self._count(key, 0, "l1_hit")
                return value
        raw = await self.backend.get(tenant, key)
        if raw is None:
            self._count(key, 1, "miss")
            return default
        self._count(key, 0, "hit")
        value = orjson.loads(raw)
        if self._coherent:
            self.l1.put(tenant, key, value, None, ())
        return value

    async def set(
        self, key: str, value: Any, ttl_s: float | None = None, tags: Sequence[str] = ()
    ) -> None:
        tenant = require_tenant().id
        _check(key)
        await self.backend.set(tenant, key, orjson.dumps(value), ttl_s, tags)
        self._count(key, 2, None)
        if self._coherent:
            self.l1.put(tenant, key, value, ttl_s, tuple(tags))

    async def delete(self, key: str) -> bool:
        tenant = require_tenant().id
        _check(key)
        self.l1.drop(tenant, key)
        return await self.backend.delete(tenant, key)

    async def invalidate_tags(self, *tags: str) -> int:
        tenant = require_tenant().id
        # L1 entries filled by reads do not know their tags: drop all of this tenant's.
        self.l1.drop_tenant(tenant)
        return await self.backend.invalidate_tags(tenant, tags)

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]],
        ttl_s: float | None = None,
        tags: Sequence[str] = (),
    ) -> T:
        """The cached value, or ``await factory()`` stored and returned. (No single-flight:
        concurrent misses may each call the factory.)"""
        value = await self.get(key, MISSING)
        if value is not MISSING:
            return value  # type: ignore[no-any-return]
        fresh = await factory()
        await self.set(key, fresh, ttl_s, tags)
        return fresh

    # -- stats --------------------------------------------------------------------------------
    def _count(self, key: str, idx: int, result: str | None) -> None:
        prefix = key.partition(":")[0]
        row = self._stats.get(prefix)
        if row is None:
            if len(self._stats) >= MAX_PREFIXES:
                prefix = "(other)"
            row = self._stats.setdefault(prefix, [0, 0, 0])
        row[idx] += 1
        if result is not None:
            counter = self._counters.get((prefix, result))
            if counter is None:
                if len(self._counters) >= 4 * MAX_PREFIXES:
                    self._counters.clear()
                counter = metrics.CACHE_REQUESTS.labels(self.backend.name, prefix, result)
                self._counters[(prefix, result)] = counter
            counter.inc()

    async def flush_stats(self) -> int:
        stats, self._stats = self._stats, {}
        rows = [(p, h, m, s) for p, (h, m, s) in stats.items()]
        if rows:
            async with self.db.platform_unit_of_work() as uow:
                await uow.executemany(sql.UPSERT_STATS, rows)
        return len(rows)

    async def stats(self) -> list[dict[str, Any]]:
        async with self.db.platform_unit_of_work() as uow:
            rows = await uow.fetch(sql.STATS)
        return [
            {
                "prefix": r["prefix"],
                "hits": r["hits"],
                "misses": r["misses"],
                "sets": r["sets"],
                "hit_rate_pct": float(r["hit_rate_pct"]) if r["hit_rate_pct"] is not None else None,
                "updated_at": r["updated_at"].isoformat(),
            }
            for r in rows
        ]

    # -- cross-process invalidation ---------------------------------------------------------
    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            origin, op, tenant_s, arg = str(payload).split("|", 3)
            if origin == self.origin:
                return
            tenant = UUID(tenant_s)
        except ValueError:
            return
        if op == "k":
            self.l1.drop(tenant, arg)
        elif op == "t":
            # Entries read from the backend carry no tags in L1: drop the tenant's entries.
            self.l1.drop_tenant(tenant)

    async def start(self) -> None:
        """LISTEN for invalidations (PostgreSQL backend with an L1 only), over the process's
        reconnecting LISTEN connection (kernel/db/listener). The L1 is off while that
        connection is down and starts empty again after it re-opens (NOTIFYs were missed)."""
        if self.l1.size <= 0 or self._listening:
            return
        self._listening = True
        listener = self.db.listener()
        listener.on_lost.append(self._on_lost)
        listener.on_reconnect.append(self._on_reconnect)
        await self.db.listen(sql.CHANNEL, self._on_notify)
        self._coherent = listener.connected

    def _on_lost(self) -> None:
        self._coherent = False
        self.l1.clear()

    def _on_reconnect(self) -> None:
        self.l1.clear()
        self._coherent = True

    async def close(self) -> None:
        self._coherent = False
        if self._listening:
            self._listening = False
            listener = self.db.listener()
            with contextlib.suppress(ValueError):
                listener.on_lost.remove(self._on_lost)
            with contextlib.suppress(ValueError):
                listener.on_reconnect.remove(self._on_reconnect)
            await self.db.unlisten(sql.CHANNEL, self._on_notify)
        with contextlib.suppress(Exception):
            await self.flush_stats()
        await self.backend.close()


def _check(key: str) -> None:
    if not key or len(key) > MAX_KEY or "|" in key:
        raise ValueError(f"cache keys are 1-{MAX_KEY} characters without '|'")
