"""Per-request principal status: is the token's user or API client still allowed in?

A token stays valid until it expires (15 min by default, up to 24 h), but a user can be
disabled, a membership removed or an API client disabled at any time. The auth middleware
asks :class:`PrincipalStatus` on every request; the answer is cached per (tenant, subject)
for ``auth.principal_status_ttl_s`` seconds and dropped on every process at once when the
identity data changes: the identity module's triggers ``NOTIFY tenantry_principals`` with
``<tenant_id>:<subject>`` (``*:<subject>`` for a user, in every tenant), received over the
process's shared LISTEN connection. The TTL bounds staleness if a notification is lost (the
listener reconnecting, say); the cache is also cleared whenever the listener (re)connects.

Who is active is the identity module's business: it registers a :data:`StatusSource`. With
no source registered (identity disabled), every verified principal counts as active.
The hit path is a dict lookup and a clock read (see ``bench/auth_status.py``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tenantry.kernel.tenancy.context import Principal

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.tenancy.model import Tenant

CHANNEL = "tenantry_principals"
#: Entries kept at most (oldest dropped first): one per active principal on this process.
MAX_ENTRIES = 100_000

StatusSource = Callable[["Tenant", Principal], Awaitable[bool]]
"""``(tenant, principal) -> still active?`` (one query; the identity module provides it)."""


class PrincipalStatus:
    def __init__(self, db: Database, ttl_s: float) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.source: StatusSource | None = None
        self._cache: dict[tuple[Any, str], tuple[float, bool]] = {}
        self._listening = False

    async def active(self, tenant: Tenant, principal: Principal) -> bool:
        source = self.source
        if source is None:
            return True
        key = (tenant.id, principal.subject)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        ok = await source(tenant, principal)
        if len(self._cache) >= MAX_ENTRIES:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (now + self.ttl_s, ok)
        return ok

    def invalidate(self, tenant_id: str | None = None, subject: str | None = None) -> None:
        """Drop cached answers: one (tenant, subject), a subject in every tenant
        (``tenant_id`` None), or everything (both None)."""
        if subject is None:
            self._cache.clear()
            return
        for key in [k for k in self._cache if k[1] == subject]:
            if tenant_id is None or str(key[0]) == tenant_id:
                del self._cache[key]

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        tenant_id, sep, subject = str(payload).partition(":")
        if not sep or not subject:
            self.invalidate()
        else:
            self.invalidate(None if tenant_id == "*" else tenant_id, subject)

    async def listen(self) -> None:
        # Anything cached before the subscription may have missed a change: start clean.
        await self.db.listen(CHANNEL, self._on_notify)
        self._cache.clear()
        self._listening = True

    async def close(self) -> None:
        if self._listening:
            self._listening = False
            await self.db.unlisten(CHANNEL, self._on_notify)
