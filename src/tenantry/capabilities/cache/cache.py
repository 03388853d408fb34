"""The cache facade: ``get / set / delete / get_or_set / invalidate_tags``.

The tenant always comes from the ambient context (``require_tenant``) and is part of every
key at every level: the L1 dict key, the PostgreSQL primary key (under RLS), the Redis key.
Values are JSON (orjson). With the PostgreSQL backend an in-process L1 (bounded LRU) serves
repeated reads; writes and deletes NOTIFY ``tenantry_cache`` and every process's listener
drops the entry (or the tag's entries) from its L1, so processes stay coherent within the
notification delay. Hits and misses are counted per key prefix (``prefix_of``: the first
two ``:``-separated parts of a key of three or more, e.g. ``projects:list`` of
``projects:list:<digest>``, else the first part), exposed in Prometheus and flushed to
``tenantry.cache_stats``.

Values come back as JSON decodes them, whichever level serves them (a set stores the decoded
form of what it wrote in L1, and ``get_or_set`` returns it): a UUID or a datetime is a string
on every read, the first included. Values served from L1 are shared: treat them as read-only.

Read paths (``ReadPath``, ``cache.path(prefix, ttl_s)``) are what modules read through: a key
prefix, a TTL, a tag invalidated on write, a bypass (``[cache] enabled = false``) and a
warmer (``cache.warm``: the maintenance job ``cache-warm`` at start-up and after each
maintenance interval, and ``tenantry cache warm``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import orjson

from tenantry.capabilities.cache import sql
from tenantry.capabilities.cache.l1 import L1, MISSING
from tenantry.kernel.observability import metrics
from tenantry.kernel.tenancy.context import require_tenant, tenant_scope

if TYPE_CHECKING:
    from tenantry.capabilities.cache.backend import CacheBackend
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger("tenantry.cache")
T = TypeVar("T")
MAX_KEY = 1000
MAX_PREFIXES = 200
#: Pending refresh marks per read path (``ReadPath.refresh``) before they are dropped.
MAX_REFRESH = 100_000
Warmer = Callable[[], Awaitable[int]]


def prefix_of(key: str) -> str:
    """The stats prefix of ``key``: ``a:b`` of ``a:b:c...``, ``a`` of ``a:b`` or ``a``."""
    first, sep, rest = key.partition(":")
    if not sep:
        return first
    second, sep2, _ = rest.partition(":")
    return f"{first}:{second}" if sep2 else first


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
        #: False: read paths load from the source every time (``[cache] enabled``; benches).
        self.enabled = True
        #: Sweeps of expired entries run by this process's loop (capabilities/cache/api.py).
        self.sweeps = 0
        #: The read paths modules declared (``path``), by prefix.
        self.paths: dict[str, ReadPath] = {}

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
        await self._set(key, value, ttl_s, tags)

    async def _set(self, key: str, value: Any, ttl_s: float | None, tags: Sequence[str]) -> Any:
        """Store ``value``; return it as every later read returns it (JSON-decoded)."""
        tenant = require_tenant().id
        _check(key)
        raw = orjson.dumps(value)
        await self.backend.set(tenant, key, raw, ttl_s, tags)
        self._count(key, 2, None)
        decoded = orjson.loads(raw)
        if self._coherent:
            self.l1.put(tenant, key, decoded, ttl_s, tuple(tags))
        return decoded

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
        """The cached value, or ``await factory()`` stored and returned as JSON decodes it.
        (No single-flight: concurrent misses may each call the factory.)"""
        value = await self.get(key, MISSING)
        if value is not MISSING:
            return value  # type: ignore[no-any-return]
        fresh = await factory()
        return await self._set(key, fresh, ttl_s, tags)  # type: ignore[no-any-return]

    # -- read paths and warming ---------------------------------------------------------------
    def path(self, prefix: str, ttl_s: float, tag: str | None = None) -> ReadPath:
        """Declare (or get) the read path of ``prefix`` (``module:what``, no trailing ``:``)."""
        existing = self.paths.get(prefix)
        if existing is not None:
            return existing
        if prefix.count(":") != 1 or "|" in prefix:
            raise ValueError(f"a read path's prefix is 'module:what', not {prefix!r}")
        rp = self.paths[prefix] = ReadPath(self, prefix, ttl_s, tag or prefix)
        return rp

    async def warm(self, tenants: Iterable[Tenant]) -> dict[str, int]:
        """Run every read path's warmer in each of ``tenants``: keys filled, per prefix. A
        warmer that fails for a tenant is logged and skipped (warming is an optimisation)."""
        out: dict[str, int] = {p: 0 for p, rp in self.paths.items() if rp.warmer is not None}
        if not self.enabled:
            return out
        for tenant in tenants:
            with tenant_scope(tenant):
                for prefix, rp in self.paths.items():
                    if rp.warmer is None:
                        continue
                    try:
                        out[prefix] += await rp.warmer()
                    except Exception as exc:
                        _log.warning("cache warmer %s in %s: %r", prefix, tenant.slug, exc)
        return out

    def count_l1_hit(self, key: str) -> None:
        """Count a hit served by a caller's own in-process copy of a cached value (authz's
        policy snapshot): it is a hit of ``key``'s prefix, as an L1 hit is."""
        self._count(key, 0, "l1_hit")

    # -- stats --------------------------------------------------------------------------------
    def _count(self, key: str, idx: int, result: str | None) -> None:
        prefix = prefix_of(key)
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
        for path in self.paths.values():
            for task in list(path._drops):
                task.cancel()
            await path.settle()
        await self.backend.close()


def _check(key: str) -> None:
    if not key or len(key) > MAX_KEY or "|" in key:
        raise ValueError(f"cache keys are 1-{MAX_KEY} characters without '|'")


@dataclass
class ReadPath:
    """One cached read of a module: keys ``<prefix>:<suffix>`` of the ambient tenant, kept
    ``ttl_s``, tagged ``tag`` (``invalidate`` after the write's commit drops them all, in every
    process). ``refresh(tenant_id, suffix)``, for writes this process learns of by a NOTIFY sent
    at their commit (authz's, reporting's): the key is deleted from the shared cache at once
    (every listening process does: a few idempotent deletes per change), so a process started
    later never reads the old value; and this process's next read of it loads from the source
    and overwrites the shared entry, so a racing read that stored an old value after the delete
    is replaced. ``warmer``: fills the hot keys of the ambient tenant, returning how many
    (``Cache.warm``)."""

    cache: Cache
    prefix: str
    ttl_s: float
    tag: str
    warmer: Warmer | None = None
    _refresh: set[Any] = field(default_factory=set)
    _drops: set[asyncio.Task[None]] = field(default_factory=set)

    def key(self, suffix: str) -> str:
        return f"{self.prefix}:{suffix}"

    async def get(
        self, suffix: str, load: Callable[[], Awaitable[T]], tenant: Tenant | None = None
    ) -> T:
        """The cached value of ``suffix`` of ``tenant`` (default: the ambient one), else
        ``await load()`` stored (JSON-decoded, as a hit returns it). With the cache disabled,
        ``load()`` every time (decoded alike)."""
        if tenant is not None:
            with tenant_scope(tenant):
                return await self.get(suffix, load)
        cache = self.cache
        key = self.key(suffix)
        if not cache.enabled:
            return orjson.loads(orjson.dumps(await load()))  # type: ignore[no-any-return]
        if self._refresh:
            mark = (require_tenant().id, key)
            if mark in self._refresh:
                self._refresh.discard(mark)
                cache._count(key, 1, "miss")
                return await cache._set(key, await load(), self.ttl_s, (self.tag,))  # type: ignore[no-any-return]
        return await cache.get_or_set(key, load, self.ttl_s, (self.tag,))

    async def invalidate(self) -> int:
        """Drop the ambient tenant's entries of this path (call after the write commits)."""
        if not self.cache.enabled:
            return 0
        return await self.cache.invalidate_tags(self.tag)

    async def drop(self, suffix: str, tenant: Tenant | None = None) -> bool:
        """Drop the entry of ``suffix`` of ``tenant`` (default: the ambient one); call after
        the write commits."""
        if not self.cache.enabled:
            return False
        if tenant is None:
            return await self.cache.delete(self.key(suffix))
        with tenant_scope(tenant):
            return await self.cache.delete(self.key(suffix))

    def refresh(self, tenant_id: UUID, suffix: str) -> None:
        if len(self._refresh) >= MAX_REFRESH:
            # bounded memory: marks of keys nobody read since are forgotten, and those keys
            # may serve their old shared entry until their TTL (docs/operations.md, "Cache")
            self._refresh.clear()
        key = self.key(suffix)
        self._refresh.add((tenant_id, key))
        if not self.cache.enabled:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._delete_shared(tenant_id, key))
        except RuntimeError:  # no running loop (a synchronous caller): the mark alone
            return
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    async def _delete_shared(self, tenant_id: UUID, key: str) -> None:
        try:
            self.cache.l1.drop(tenant_id, key)
            await self.cache.backend.delete(tenant_id, key)
        except Exception as exc:  # the mark and the TTL still bound the old value's life
            _log.warning("cache: deleting %s of %s failed: %r", key, tenant_id, exc)

    async def settle(self) -> None:
        """Wait for (or, when closing, cancel) the deletes ``refresh`` started."""
        if self._drops:
            await asyncio.gather(*self._drops, return_exceptions=True)
