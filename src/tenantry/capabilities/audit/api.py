"""The audit module: migrations, request metadata middleware, partition job, query route."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Query

from tenantry.capabilities.audit.buffer import AuditBuffer
from tenantry.capabilities.audit.context import RequestMetaMiddleware
from tenantry.capabilities.audit.log import AuditLog
from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.http.deps import require
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import Principal, require_tenant
from tenantry.kernel.tenancy.model import SHARED_SCHEMA

_log = logging.getLogger(__name__)
READ = "audit:read"


def _out(r: dict[str, Any]) -> dict[str, Any]:
    return {
        **r,
        "id": str(r["id"]),
        "occurred_at": r["occurred_at"].isoformat(),
    }


def build_router(log: AuditLog) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/events", summary="The tenant's audit records, newest first")
    async def events(
        _: Annotated[Principal, Depends(require(READ))],
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(max_length=30)] = None,
        action: Annotated[str | None, Query(max_length=200)] = None,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        outcome: Annotated[str | None, Query(max_length=20)] = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        before_seq = None
        if cursor is not None:
            if not cursor.isdigit():
                raise ValidationFailed("invalid cursor", errors=[{"field": "cursor"}])
            before_seq = int(cursor)
        rows = await log.events(
            require_tenant(),
            before_seq=before_seq,
            limit=limit + 1,
            action=action,
            actor=actor,
            outcome=outcome,
            since=since,
            until=until,
        )
        nxt = str(rows[limit - 1]["seq"]) if len(rows) > limit else None
        return {"items": [_out(r) for r in rows[:limit]], "next_cursor": nxt}

    return router


class AuditModule(Module):
    name: ClassVar[str] = "audit"
    migrations: ClassVar[str | None] = "tenantry.capabilities.audit.migrations"
    permissions: ClassVar[dict[str, str]] = {READ: "read the tenant's audit log"}

    # One module object may serve several platforms (tests build more than one): per-platform
    # state lives in platform.services, never on the module.
    def setup(self, platform: Platform) -> None:
        cfg = platform.settings.module_settings("audit")
        log = AuditLog(platform.db)
        buffer = AuditBuffer(
            log,
            interval=float(cfg.get("buffer_interval_s", 0.5)),
            max_size=int(cfg.get("buffer_max", 1000)),
        )
        platform.services["audit"] = log
        platform.services["audit.buffer"] = buffer
        platform.add_middleware(RequestMetaMiddleware)
        platform.include_router(build_router(log), self.name)

    @staticmethod
    def _cfg(platform: Platform) -> tuple[int, float]:
        cfg = platform.settings.module_settings("audit")
        return (
            int(cfg.get("partitions_ahead_months", 2)),
            float(cfg.get("partition_job_interval_s", 86_400)),
        )

    async def ensure_partitions(self, platform: Platform) -> int:
        log: AuditLog = platform.services["audit"]
        stores: set[tuple[str, str | None, str]] = {("default", None, SHARED_SCHEMA)}
        for t in await platform.catalog.all():
            stores.add(t.store_key)
        return await log.ensure_partitions(
            sorted(stores, key=str), self._cfg(platform)[0], platform.settings.database.app_user
        )

    async def _partition_job(self, platform: Platform) -> None:
        while True:
            await asyncio.sleep(self._cfg(platform)[1])
            try:
                await self.ensure_partitions(platform)
            except Exception:
                _log.exception("audit: creating future partitions failed")

    async def startup(self, platform: Platform) -> None:
        await self.ensure_partitions(platform)
        platform.services["audit.buffer"].start()
        job = asyncio.get_running_loop().create_task(self._partition_job(platform))
        platform.services["audit.partition_job"] = job

    async def shutdown(self, platform: Platform) -> None:
        job = platform.services.pop("audit.partition_job", None)
        if job is not None:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        buffer: AuditBuffer | None = platform.services.get("audit.buffer")
        if buffer is not None:
            await buffer.stop()


module = AuditModule()
