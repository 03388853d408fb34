"""The port every cache backend implements (PostgreSQL, Redis). Values are bytes here;
the ``Cache`` facade serializes. Every call names the tenant: a backend never sees a key
without its tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID


class CacheBackend(Protocol):
    name: str

    async def get(self, tenant: UUID, key: str) -> bytes | None: ...

    async def set(
        self, tenant: UUID, key: str, value: bytes, ttl_s: float | None, tags: Sequence[str]
    ) -> None: ...

    async def delete(self, tenant: UUID, key: str) -> bool: ...

    async def invalidate_tags(self, tenant: UUID, tags: Sequence[str]) -> int: ...

    async def sweep(self) -> int: ...

    async def close(self) -> None: ...
