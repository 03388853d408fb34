"""The chainer: moves ``uow.audit`` records from ``audit_pending`` onto each tenant's hash
chain, in batches, in the background.

Writers append pending records at commit without touching the chain head (capabilities/
audit/log.AuditLog.write), so a hot tenant's transactions never queue behind each other for
the audit chain; this task is the one that takes the head, once per batch. It looks at:

- the tenants this process wrote pending records for (``mark``), every ``interval`` seconds.
  A record is visible only once its writer commits, so a tenant stays marked until a round
  that starts more than ``interval`` after its last mark (its commit then had that long);
- every ready tenant every ``poll`` seconds: records written by processes that do not run a
  chainer, and those left by a crash.

Reads and ``tenantry audit verify`` chain a tenant's pending records first, so they never
miss a committed record. Several processes may run a chainer: the head's row lock orders
them, and the second one finds the records gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

from tenantry.capabilities.audit.log import AuditLog
from tenantry.kernel.db.errors import database_unavailable
from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)


class AuditChainer:
    def __init__(
        self,
        log: AuditLog,
        all_tenants: Callable[[], Awaitable[list[Tenant]]],
        *,
        interval: float = 1.0,
        poll: float = 60.0,
    ) -> None:
        self.log = log
        self.all_tenants = all_tenants
        self.interval = interval
        self.poll = poll
        self._marked: dict[UUID, tuple[Tenant, float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_poll = 0.0
        #: Records chained by this chainer (tests, metrics).
        self.chained = 0

    def mark(self, tenant: Tenant) -> None:
        self._marked[tenant.id] = (tenant, time.monotonic())

    async def round(self, *, everyone: bool = False) -> int:
        """One pass: the marked tenants (and, when due or asked, every ready tenant)."""
        started = time.monotonic()
        tenants = {tid: t for tid, (t, _) in self._marked.items()}
        if everyone or started - self._last_poll >= self.poll:
            self._last_poll = started
            for t in await self.all_tenants():
                tenants.setdefault(t.id, t)
        done = 0
        for tenant in tenants.values():
            try:
                done += await self.log.chain(tenant)
            except Exception as exc:
                if database_unavailable(exc):
                    _log.warning("audit chainer: %s unavailable: %s", tenant.slug, exc)
                else:
                    _log.exception("audit chainer: chaining %s failed", tenant.slug)
        for tid, (_, at) in list(self._marked.items()):
            if at < started - self.interval:
                self._marked.pop(tid, None)
        self.chained += done
        return done

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.round()
            except Exception:  # the catalog read failed: next round
                _log.exception("audit chainer round failed")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="tenantry-audit-chainer"
            )

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
