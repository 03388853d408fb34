"""The port every cache backend implements (PostgreSQL, Redis). Values are bytes here;
the ``Cache`` facade serializes. Every call names the tenant: a backend never sees a key
without its tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from tenantry.kernel.tenancy.audit import PlatformAudit


class CacheBackend(Protocol):
    name: str

    async def get(self, tenant: UUID, key: str) -> bytes | None: ...

    async def set(
        self, tenant: UUID, key: str, value: bytes, ttl_s: float | None, tags: Sequence[str]
    ) -> None: ...

    async def delete(self, tenant: UUID, key: str) -> bool: ...

    async def invalidate_tags(self, tenant: UUID, tags: Sequence[str]) -> int: ...

    async def sweep(self, batch: int = 10_000, audit: PlatformAudit | None = None) -> int:
        """Remove expired entries; with ``audit`` (an operator's command) record the count
        removed in the operator tenant's log, in the removal's transaction."""
        ...

    async def close(self) -> None: ...
