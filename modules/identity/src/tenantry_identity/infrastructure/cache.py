"""Member profiles in the platform cache: read path ``identity:profile`` (300 s), one key
per user (``identity:profile:<user id>``) of the ambient tenant. A miss for a user who is no
member is kept too (as null) and dropped when they are added."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from tenantry.capabilities.cache import Cache
from tenantry.kernel.tenancy.model import Tenant

PREFIX = "identity:profile"
TTL_S = 300.0


class CachedProfiles:
    def __init__(self, cache: Cache) -> None:
        self.path = cache.path(PREFIX, TTL_S)

    async def get(
        self, tenant: Tenant, user_id: UUID, load: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.path.get(str(user_id), load, tenant)
        return found

    async def drop(self, tenant: Tenant, user_id: UUID) -> None:
        await self.path.drop(str(user_id), tenant)
