"""The dashboard metadata in the platform cache: read path ``reporting:dashboard`` (300 s),
one key per tenant (``reporting:dashboard:meta``). A fold that changes the metadata NOTIFYs
``tenantry_reporting_dashboard`` in its transaction; each process's listener (module.py)
makes its next read load from the table and overwrite the cached entry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from tenantry.capabilities.cache import Cache
from tenantry.kernel.db.uow import UnitOfWork
from tenantry_reporting.infrastructure.sql import DASHBOARD_CHANNEL

PREFIX = "reporting:dashboard"
SUFFIX = "meta"
TTL_S = 300.0


class CachedDashboards:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.path = cache.path(PREFIX, TTL_S)

    async def get(self, load: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        found: dict[str, Any] = await self.path.get(SUFFIX, load)
        return found

    async def peek(self) -> dict[str, Any] | None:
        if not self.cache.enabled:
            return None
        found: dict[str, Any] | None = await self.cache.get(self.path.key(SUFFIX))
        return found

    async def changed(self, uow: UnitOfWork) -> None:
        if self.cache.enabled:  # nothing is cached when the cache is off: nobody to tell
            await uow.notify(DASHBOARD_CHANNEL, str(uow.tenant_id))

    def on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            self.path.refresh(UUID(str(payload)), SUFFIX)
        except ValueError:
            return
