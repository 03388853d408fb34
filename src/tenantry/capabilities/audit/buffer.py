"""Buffered audit writes for the hot path (read-only authorization decisions).

``add`` is a list append; a background task appends the buffered records per tenant in one
transaction each (one head lock, one executemany) every ``interval`` seconds or as soon as
``max_size`` records wait. Records still buffered when the process dies are lost: writes
that must not be lost go through ``audit.record(uow, ...)`` in the caller's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

from tenantry.capabilities.audit.log import AuditLog, Event
from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)


class AuditBuffer:
    def __init__(self, log: AuditLog, interval: float = 0.5, max_size: int = 1000) -> None:
        self.log = log
        self.interval = interval
        self.max_size = max_size
        self._pending: dict[UUID, tuple[Tenant, list[Event]]] = {}
        self._size = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()  # a flush returns only when what it took is written
        self.dropped = 0

    def add(self, tenant: Tenant, e: Event) -> None:
        slot = self._pending.get(tenant.id)
        if slot is None:
            self._pending[tenant.id] = (tenant, [e])
        else:
            slot[1].append(e)
        self._size += 1
        if self._size >= self.max_size:
            self._wake.set()

    async def flush(self) -> int:
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        pending, self._pending, self._size = self._pending, {}, 0
        written = 0
        for tenant, events in pending.values():
            try:
                await self.log.append_for(tenant, events)
                written += len(events)
            except Exception:
                self.dropped += len(events)
                _log.exception("audit: %d buffered records of %s lost", len(events), tenant.slug)
        return written

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
