"""The project list in the platform cache: read path ``projects:list`` (600 s), one key per
page asked (filter and sort fingerprint, limit, cursor position), tenant-scoped by the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tenantry.capabilities.cache import Cache
from tenantry.capabilities.pagination import ListQuery
from tenantry_projects.application.ports import Page

PREFIX = "projects:list"
TTL_S = 600.0


def page_key(query: ListQuery) -> str:
    """What decides a page's rows: the filter and sort (the query's fingerprint), the limit
    and where the cursor starts."""
    raw = orjson.dumps([query.fingerprint, query.limit, query.cursor_values], default=str)
    return hashlib.sha256(raw).hexdigest()[:32]


class CachedLists:
    def __init__(self, cache: Cache) -> None:
        self.path = cache.path(PREFIX, TTL_S)

    async def page(self, query: Any, load: Callable[[], Awaitable[Page]]) -> Page:
        items, cursor = await self.path.get(page_key(query), load)
        return items, cursor

    async def invalidate(self) -> None:
        await self.path.invalidate()
