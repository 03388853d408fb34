"""The audit module: migrations, request metadata middleware, partition job, query route."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tenantry.capabilities.audit.buffer import AuditBuffer
from tenantry.capabilities.audit.chainer import AuditChainer
from tenantry.capabilities.audit.context import RequestMetaMiddleware
from tenantry.capabilities.audit.export_source import EVENTS
from tenantry.capabilities.audit.log import EVENT_FIELDS, AuditLog
from tenantry.capabilities.export.sources import export_sources
from tenantry.capabilities.pagination import ListQuery, list_query, search_query
from tenantry.kernel.http.deps import require
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.context import Principal, require_tenant
from tenantry.kernel.tenancy.model import SHARED_SCHEMA

_log = logging.getLogger(__name__)
READ = "audit:read"


def build_router(log: AuditLog) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/events", summary="The tenant's audit records (filter, sort, keyset pages)")
    async def events(
        _: Annotated[Principal, Depends(require(READ))],
        q: Annotated[ListQuery, Depends(list_query(EVENT_FIELDS))],
    ) -> dict[str, Any]:
        return await log.query(require_tenant(), q)

    @router.post("/events/search", summary="The same query with the filter document in the body")
    async def search(
        _: Annotated[Principal, Depends(require(READ))],
        q: Annotated[ListQuery, Depends(search_query(EVENT_FIELDS))],
    ) -> dict[str, Any]:
        return await log.query(require_tenant(), q)

    return router


class AuditSettings(BaseModel):
    """``[audit]``: partitions of the audit log and the decision-record buffer."""

    model_config = ConfigDict(extra="forbid")

    #: Monthly partitions kept ahead (plus a default partition).
    partitions_ahead_months: int = Field(default=2, ge=0, le=36)
    #: Seconds between runs of the partition job.
    partition_job_interval_s: float = Field(default=86_400.0, gt=0)
    #: Buffered decision records are flushed this often ...
    buffer_interval_s: float = Field(default=0.5, gt=0)
    #: ... or as soon as this many wait.
    buffer_max: int = Field(default=1000, ge=1)
    #: Run the chainer (pending ``uow.audit`` records onto the hash chain) in this process.
    chain_in_process: bool = True
    #: Seconds between the chainer's rounds over the tenants this process wrote records for.
    chain_interval_s: float = Field(default=1.0, gt=0)
    #: Seconds between the chainer's rounds over every tenant (other processes' records).
    chain_poll_s: float = Field(default=60.0, gt=0)
    #: Pending records chained per transaction (one head lock, one executemany).
    chain_batch: int = Field(default=1000, ge=1, le=100_000)


@dataclass
class _PartitionJob:
    """The platform's partition task (started at startup, cancelled at shutdown)."""

    task: asyncio.Task[None] | None = None


class AuditModule(Module):
    name: ClassVar[str] = "audit"
    capability: ClassVar[bool] = True
    migrations: ClassVar[str | None] = "tenantry.capabilities.audit.migrations"
    permissions: ClassVar[dict[str, str]] = {READ: "read the tenant's audit log"}
    settings_model = AuditSettings

    # One module object may serve several platforms (tests build more than one): per-platform
    # state lives in the platform's capability handles, never on the module.
    def setup(self, registrar: Registrar) -> None:
        cfg = registrar.settings.section(self.name, AuditSettings)
        log = AuditLog(registrar.db, cfg.chain_batch)
        buffer = AuditBuffer(log, interval=cfg.buffer_interval_s, max_size=cfg.buffer_max)
        # uow.audit(...) records: appended at commit by this writer, chained in batches.
        registrar.db.commit_writers.audit = log
        chainer = AuditChainer(
            log, registrar.catalog.ready, interval=cfg.chain_interval_s, poll=cfg.chain_poll_s
        )
        if cfg.chain_in_process:
            log.on_pending = chainer.mark
        registrar.provide(AuditLog, log)
        registrar.provide(AuditBuffer, buffer)
        registrar.provide(AuditChainer, chainer)
        registrar.provide(_PartitionJob, _PartitionJob())
        registrar.add_middleware(RequestMetaMiddleware)
        registrar.include_router(build_router(log))
        export_sources(registrar).register(EVENTS)

    @staticmethod
    def _cfg(platform: Platform) -> tuple[int, float]:
        cfg = platform.settings.section("audit", AuditSettings)
        return (cfg.partitions_ahead_months, cfg.partition_job_interval_s)

    async def ensure_partitions(self, platform: Platform) -> int:
        log = platform.use(AuditLog)
        stores: set[tuple[str, str | None, str]] = {("default", None, SHARED_SCHEMA)}
        for t in await platform.catalog.ready():  # not tenants still being provisioned
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
        platform.use(AuditBuffer).start()
        if platform.settings.section(self.name, AuditSettings).chain_in_process:
            platform.use(AuditChainer).start()
        job = asyncio.get_running_loop().create_task(self._partition_job(platform))
        platform.use(_PartitionJob).task = job

    async def shutdown(self, platform: Platform) -> None:
        holder = platform.use(_PartitionJob)
        job, holder.task = holder.task, None
        if job is not None:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await platform.use(AuditBuffer).stop()
        await platform.use(AuditChainer).stop()


module = AuditModule()
