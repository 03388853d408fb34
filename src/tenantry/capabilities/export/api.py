"""The export capability's startup object and routes (``/api/v1/exports``).

It plugs in like a module (entry point ``tenantry.modules``: ``exports``) so it gets
migrations, permissions, routes and job handlers through the one module contract; it is a
capability because it serves every module and knows none of them (sources are registered).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator
from starlette.responses import Response

from tenantry.capabilities.export import links
from tenantry.capabilities.export.notify import resolve_notifier
from tenantry.capabilities.export.service import (
    CLEANUP,
    RUN,
    SCHEDULED,
    ExportRequest,
    ExportService,
)
from tenantry.capabilities.export.settings import ExportSettings
from tenantry.capabilities.export.sources import Column, Source, export_sources
from tenantry.capabilities.export.storage import build_storage
from tenantry.kernel.errors import Forbidden, NotFound
from tenantry.kernel.http.deps import require
from tenantry.kernel.http.idempotency import IdempotencyKeyHeader
from tenantry.kernel.http.openapi import problems_extra
from tenantry.kernel.http.responses import JsonResponse
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import Principal, current_principal, tenant_scope
from tenantry.kernel.tenancy.model import TenantStatus

READ = "exports:read"
WRITE = "exports:write"
Reader = Annotated[Principal, Depends(require(READ))]
Writer = Annotated[Principal, Depends(require(WRITE))]

#: The exports themselves are a source: the tenant's export history.
HISTORY = Source(
    "exports.history",
    "SELECT id, source, format, status, rows_total, bytes, created_at, finished_at FROM exports",
    (
        Column("id", "uuid"),
        Column("source"),
        Column("format"),
        Column("status"),
        Column("rows_total", "int"),
        Column("bytes", "int"),
        Column("created_at", "timestamptz"),
        Column("finished_at", "timestamptz"),
    ),
    ("created_at", "id"),
    permission=READ,
    title="Export history",
)


class Notify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)
    webhook: HttpUrl | None = None

    @model_validator(mode="after")
    def _one(self) -> Notify:
        if (self.email is None) == (self.webhook is None):
            raise ValueError("give exactly one of email or webhook")
        return self


class NewExport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(max_length=200)
    format: str = Field(max_length=20)
    columns: list[str] | None = Field(default=None, max_length=200)
    filters: dict[str, Any] = Field(default_factory=dict)
    notify: Notify | None = None

    def request(self) -> ExportRequest:
        notify = (
            {k: str(v) for k, v in self.notify.model_dump(exclude_none=True).items()}
            if self.notify
            else None
        )
        return ExportRequest(self.source, self.format, self.columns, self.filters, notify)


class NewSchedule(NewExport):
    cron: str = Field(max_length=200)
    timezone: str = Field(default="UTC", max_length=64)


def build_router(service: ExportService, platform: Platform) -> APIRouter:
    router = APIRouter(tags=["exports"])

    @router.get("/sources", summary="Registered export sources")
    async def sources(_: Reader) -> dict[str, Any]:
        return {"items": [s.describe() for s in service.sources.all()]}

    @router.post("/schedules", status_code=201, summary="Schedule an export (cron + timezone)")
    async def create_schedule(body: NewSchedule, p: Writer) -> dict[str, Any]:
        return await service.create_schedule(body.request(), body.cron, body.timezone, p)

    @router.get("/schedules")
    async def list_schedules(
        _: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> dict[str, Any]:
        return {"items": await service.schedules(limit)}

    @router.get("/schedules/{schedule_id}")
    async def get_schedule(schedule_id: UUID, _: Reader) -> dict[str, Any]:
        return await service.schedule(schedule_id)

    @router.delete("/schedules/{schedule_id}")
    async def disable_schedule(schedule_id: UUID, _: Writer) -> dict[str, Any]:
        return await service.disable_schedule(schedule_id)

    @router.get("/schedules/{schedule_id}/runs", summary="Exports produced by a schedule")
    async def schedule_runs(
        schedule_id: UUID, _: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> dict[str, Any]:
        return {"items": await service.runs(schedule_id, limit)}

    @router.post(
        "", status_code=202, summary="Request an export", openapi_extra=problems_extra(409)
    )
    async def create_export(
        body: NewExport,
        p: Writer,
        idempotency_key: IdempotencyKeyHeader,
    ) -> JsonResponse:
        export, created = await service.create(body.request(), p, idempotency_key)
        headers = {"Location": f"/api/v1/exports/{export['id']}"}
        return JsonResponse(export, status_code=202 if created else 200, headers=headers)

    @router.get("", summary="The tenant's exports, newest first")
    async def list_exports(
        _: Reader,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        return await service.list_exports(limit, cursor)

    @router.get("/{export_id}", summary="Status, progress, timings and the download link")
    async def get_export(export_id: UUID, _: Reader) -> dict[str, Any]:
        return await service.get(export_id)

    @router.post("/{export_id}/cancel")
    async def cancel_export(export_id: UUID, _: Writer) -> dict[str, Any]:
        return await service.cancel(export_id)

    @router.get(
        "/{export_id}/download",
        summary="The file, with a signed link (no bearer needed)",
        openapi_extra=problems_extra(410),
    )
    async def download(
        request: Request,
        export_id: UUID,
        token: Annotated[str, Query(max_length=500)],
    ) -> Response:
        tenant_id = links.verify(service.link_key, token, export_id)
        caller = current_principal()
        if caller is not None and caller.tenant_id != tenant_id:
            raise Forbidden("the download link belongs to another tenant")
        tenant = await platform.catalog.get(tenant_id)
        if tenant is None or tenant.status is not TenantStatus.ACTIVE:
            raise NotFound(f"export {export_id} has no file to download")
        with tenant_scope(tenant, caller):
            key, name, ctype = await service.file_of(export_id)
        disposition = f'attachment; filename="{name}"'
        path = service.storage.local_path(key)
        if path is not None:
            if not path.is_file():
                raise NotFound(f"export {export_id} has no file to download")
            return FileResponse(
                path, media_type=ctype, headers={"Content-Disposition": disposition}
            )
        return StreamingResponse(
            service.storage.stream(key),
            media_type=ctype,
            headers={"Content-Disposition": disposition},
        )

    return router


class ExportModule(Module):
    name: ClassVar[str] = "exports"
    depends_on: ClassVar[tuple[str, ...]] = ("identity",)
    migrations: ClassVar[str | None] = "tenantry.capabilities.export.migrations"
    permissions: ClassVar[dict[str, str]] = {
        READ: "see the tenant's exports and download their files",
        WRITE: "request, schedule and cancel exports",
    }

    def __init__(self) -> None:
        self.service: ExportService | None = None

    def setup(self, platform: Platform) -> None:
        settings = ExportSettings(**platform.settings.module_settings("exports"))
        registry = export_sources(platform)
        registry.register(HISTORY)
        service = ExportService(
            platform.db,
            platform.jobs,
            registry,
            build_storage(settings),
            settings,
            resolve_notifier(platform.services),
        )
        self.service = service
        platform.services["exports"] = service
        platform.jobs.register(
            RUN, service.run, on_failed=service.on_failed, on_cancelled=service.on_cancelled
        )
        platform.jobs.register(SCHEDULED, service.run_scheduled)
        platform.jobs.register(CLEANUP, service.cleanup)
        platform.include_router(build_router(service, platform), self.name)

    async def startup(self, platform: Platform) -> None:
        assert self.service is not None
        self.service.notifier = resolve_notifier(platform.services)
        await self.service.load_link_key(platform.secrets)


module = ExportModule()
