"""The export capability's startup object and routes (``/api/v1/exports``).

It plugs in like a module (entry point ``tenantry.modules``: ``exports``) so it gets
migrations, permissions, routes and job handlers through the one module contract; it is a
capability because it serves every module and knows none of them (sources are registered).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from uuid import UUID
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator
from starlette.responses import Response

from tenantry.capabilities.export import links
from tenantry.capabilities.export.filters import fieldset
from tenantry.capabilities.export.notify import resolve_notifier
from tenantry.capabilities.export.service import (
    CLEANUP,
    FORMATS,
    RUN,
    SCHEDULED,
    ExportRequest,
    ExportService,
)
from tenantry.capabilities.export.settings import ExportSettings
from tenantry.capabilities.export.sources import Column, Source, export_sources
from tenantry.capabilities.export.sql import HISTORY_SQL
from tenantry.capabilities.export.storage import build_storage
from tenantry.capabilities.filtering import DEFAULT_LIMITS
from tenantry.capabilities.filtering.schema import document_schemas, filter_name
from tenantry.kernel.errors import Forbidden, NotFound
from tenantry.kernel.http.deps import require
from tenantry.kernel.http.idempotency import IdempotencyKeyHeader
from tenantry.kernel.http.openapi import JSON_VALUE_REF, Documenter, documents, problems_extra
from tenantry.kernel.http.responses import JsonResponse
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.context import Principal, current_principal, tenant_scope
from tenantry.kernel.tenancy.model import TenantStatus

EMAIL_PATTERN = r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$"
#: Five cron fields (minute hour day-of-month month day-of-week): ``*``, numbers in range,
#: ``a-b`` ranges, ``/step`` and comma lists, as croniter accepts them.
_STEP = r"(?:/[1-9][0-9]?)?"


def _cron_field(number: str) -> str:
    item = rf"(?:\*|{number}(?:-{number})?){_STEP}"
    return rf"{item}(?:,{item})*"


CRON_PATTERN = (
    "^"
    + " ".join(
        _cron_field(n)
        for n in (
            r"(?:[0-5]?[0-9])",
            r"(?:[01]?[0-9]|2[0-3])",
            r"(?:0?[1-9]|[12][0-9]|3[01])",
            r"(?:0?[1-9]|1[0-2])",
            r"[0-7]",
        )
    )
    + "$"
)
READ = "exports:read"
WRITE = "exports:write"
Reader = Annotated[Principal, Depends(require(READ))]
Writer = Annotated[Principal, Depends(require(WRITE))]

#: The exports themselves are a source: the tenant's export history.
HISTORY = Source(
    "exports.history",
    HISTORY_SQL,
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
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=320)
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


def _request_schemas(service: ExportService, schedule: bool) -> Documenter:
    """The body of ``POST /exports`` (and ``/schedules``) per registered source: its columns
    as an enum and its filter document (``capabilities.filtering.schema``, from the same
    ``FieldSet`` the export compiles with); schedules add the cron pattern and the IANA zones."""

    def rewrite(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
        notify = {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {
                        "email": {"type": "string", "maxLength": 320, "pattern": EMAIL_PATTERN},
                        "webhook": {"type": "null"},
                    },
                    "required": ["email"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "description": "one of the tenant's registered webhook endpoints (422 if not)",
                    "properties": {
                        "webhook": {"type": "string", "format": "uri", "maxLength": 2083},
                        "email": {"type": "null"},
                    },
                    "required": ["webhook"],
                    "additionalProperties": False,
                },
            ]
        }
        branches = []
        for source in service.sources.all():
            fs = fieldset(source)
            schemas.update(document_schemas(fs, DEFAULT_LIMITS, kind="Export"))
            props: dict[str, Any] = {
                "source": {"const": source.name},
                "format": {"enum": list(FORMATS)},
                "columns": {
                    "type": ["array", "null"],
                    "items": {"enum": [c.name for c in source.columns]},
                    "uniqueItems": True,
                    "maxItems": 200,
                },
                "filters": {"$ref": f"#/components/schemas/{filter_name(fs, 'Export')}.Document"},
                "notify": notify,
            }
            if schedule:
                props["cron"] = {"type": "string", "maxLength": 200, "pattern": CRON_PATTERN}
                props["timezone"] = {"enum": sorted(available_timezones()), "default": "UTC"}
            branches.append(
                {
                    "type": "object",
                    "title": source.name,
                    "properties": props,
                    "required": ["source", "format", *(["cron"] if schedule else [])],
                    "additionalProperties": False,
                }
            )
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None and branches:
            body["schema"] = {"oneOf": branches}

    return rewrite


def build_router(service: ExportService, platform: Registrar) -> APIRouter:
    router = APIRouter(tags=["exports"])

    @router.get("/sources", summary="Registered export sources")
    async def sources(_: Reader) -> dict[str, Any]:
        return {"items": [s.describe() for s in service.sources.all()]}

    @router.post("/schedules", status_code=201, summary="Schedule an export (cron + timezone)")
    @documents(_request_schemas(service, schedule=True))
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
        "",
        status_code=202,
        summary="Request an export",
        openapi_extra=problems_extra(409),
        responses={
            200: {
                "description": "Replayed: an earlier request with this Idempotency-Key, "
                "its export as it is now (nothing new is queued)",
                "content": {"application/json": {"schema": {"$ref": JSON_VALUE_REF}}},
            }
        },
    )
    @documents(_request_schemas(service, schedule=False))
    async def create_export(
        body: NewExport,
        p: Writer,
        idempotency_key: IdempotencyKeyHeader,
    ) -> JsonResponse:
        export, created = await service.create(body.request(), p, idempotency_key)
        headers = {"Location": f"/api/v1/exports/{export['id']}"}
        return JsonResponse(export, status_code=202 if created else 200, headers=headers)

    @router.get("", summary="The tenant's exports, newest first", openapi_extra=problems_extra(404))
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
    capability: ClassVar[bool] = True
    depends_on: ClassVar[tuple[str, ...]] = ("identity",)
    migrations: ClassVar[str | None] = "tenantry.capabilities.export.migrations"
    settings_model = ExportSettings
    permissions: ClassVar[dict[str, str]] = {
        READ: "see the tenant's exports and download their files",
        WRITE: "request, schedule and cancel exports",
    }

    def __init__(self) -> None:
        self.service: ExportService | None = None

    def setup(self, registrar: Registrar) -> None:
        settings = registrar.settings.section(self.name, ExportSettings)
        registry = export_sources(registrar)
        registry.register(HISTORY)
        service = ExportService(
            registrar.db,
            registrar.jobs,
            registry,
            build_storage(settings),
            settings,
            resolve_notifier(registrar.capabilities),
        )
        self.service = service
        registrar.provide(ExportService, service)
        registrar.add_job(
            RUN, service.run, on_failed=service.on_failed, on_cancelled=service.on_cancelled
        )
        registrar.add_job(SCHEDULED, service.run_scheduled)
        registrar.add_job(CLEANUP, service.cleanup)
        registrar.include_router(build_router(service, registrar))

    async def startup(self, platform: Platform) -> None:
        assert self.service is not None
        self.service.notifier = resolve_notifier(platform.capabilities)
        await self.service.load_link_key(platform.secrets)


module = ExportModule()
