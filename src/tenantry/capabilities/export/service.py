"""The export service: validate and queue requests, run them as jobs, serve the files.

Exactness: a job reads from one REPEATABLE READ, read-only transaction (one snapshot) in the
tenant's own unit of work, so the row count, the rows and every filter see the same data and
RLS applies to the worker exactly as to the API. The snapshot is taken when the job starts
(not when the request was made: a queued export sees rows committed while it waited).
A retried job starts over from a new snapshot and a new staging file; only a complete file
is ever published (atomic commit) and only then is the export marked succeeded.

Audit: what callers change is recorded in the transaction of the change (``uow.audit``):
``export.requested`` (also a schedule's run, without an actor), ``export.cancelled``,
``export.schedule_created``, ``export.schedule_disabled``. A notice target is recorded by its
channel only (a webhook URL may carry a secret). The job's own progress is not audited.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from tenantry.capabilities.export import formats, links
from tenantry.capabilities.export import sql as q
from tenantry.capabilities.export.filters import compile_filters, count_sql, select_sql
from tenantry.capabilities.export.notify import Notifier
from tenantry.capabilities.export.settings import ExportSettings, limits_for
from tenantry.capabilities.export.sources import Source, SourceRegistry
from tenantry.capabilities.export.storage import ObjectStorage
from tenantry.capabilities.pagination.cursor import invalid as invalid_cursor
from tenantry.kernel.auth.secrets import PlatformSecrets
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.errors import Conflict, Forbidden, NotFound, ProblemError, ValidationFailed
from tenantry.kernel.jobs import JobContext, JobRunner, PermanentJobError
from tenantry.kernel.jobs import sql as job_sql
from tenantry.kernel.tenancy.context import Principal, require_tenant

_log = logging.getLogger("tenantry.exports")
FORMATS = ("csv", "xlsx", "pdf", "parquet")
EXT = {"csv": "csv", "xlsx": "xlsx", "pdf": "pdf", "parquet": "parquet"}
RUN = "exports.run"
SCHEDULED = "exports.scheduled"
CLEANUP = "exports.cleanup"


def _audited(req: ExportRequest, columns: list[str]) -> dict[str, Any]:
    """What an audit record keeps of a request: the notice's channel, not its target."""
    return {
        "source": req.source,
        "format": req.format,
        "columns": columns,
        "filters": req.filters,
        "notify": sorted(req.notify) if req.notify else None,
    }


class TooManyExports(ProblemError):
    status, type_slug, title = 429, "too-many-exports", "Too many exports running"


@dataclass(frozen=True)
class ExportRequest:
    source: str
    format: str
    columns: list[str] | None
    filters: dict[str, Any]
    notify: dict[str, str] | None


class ExportService:
    def __init__(
        self,
        db: Database,
        jobs: JobRunner,
        sources: SourceRegistry,
        storage: ObjectStorage,
        settings: ExportSettings,
        notifier: Notifier,
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.sources = sources
        self.storage = storage
        self.settings = settings
        self.notifier = notifier
        self.link_key = b""

    async def load_link_key(self, secrets: PlatformSecrets) -> None:
        """The HMAC key of download links, derived from the platform secret."""
        self.link_key = await secrets.derive("exports.download-links")

    # -- validation -------------------------------------------------------------------------
    def validate(self, req: ExportRequest, principal: Principal | None) -> tuple[Source, list[str]]:
        """Everything checkable without data: ValidationFailed (422) / Forbidden (403)."""
        source = self.sources.get(req.source)
        if source is None:
            known = ", ".join(s.name for s in self.sources.all())
            raise ValidationFailed(
                f"unknown export source {req.source!r}",
                errors=[{"field": "source", "message": f"one of: {known}"}],
            )
        if req.format not in FORMATS:
            raise ValidationFailed(
                f"unknown format {req.format!r}",
                errors=[{"field": "format", "message": "one of: " + ", ".join(FORMATS)}],
            )
        columns = req.columns or [c.name for c in source.columns]
        unknown = [c for c in columns if c not in source.by_name]
        if unknown or len(set(columns)) != len(columns):
            raise ValidationFailed(
                f"unknown or repeated columns for {source.name}: {unknown or columns}",
                errors=[
                    {
                        "field": "columns",
                        "message": f"columns of {source.name}: " + ", ".join(source.by_name),
                    }
                ],
            )
        compile_filters(req.filters, source)
        if principal is not None and source.permission and not principal.can(source.permission):
            raise Forbidden(f"exporting {source.name} requires {source.permission!r}")
        return source, columns

    @staticmethod
    def request_hash(req: ExportRequest) -> str:
        body = orjson.dumps(
            [req.source, req.format, req.columns, req.filters, req.notify],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(body).hexdigest()

    # -- API side ---------------------------------------------------------------------------
    async def create(
        self,
        req: ExportRequest,
        principal: Principal | None,
        idempotency_key: str | None = None,
        schedule_id: UUID | None = None,
        uow: UnitOfWork | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Queue an export; returns (export, created). Replays of an Idempotency-Key return
        the first export; the same key with a different body is a 409."""
        _, columns = self.validate(req, principal)
        if uow is None:
            async with self.db.unit_of_work() as own:
                return await self._create(own, req, columns, principal, idempotency_key, None)
        return await self._create(uow, req, columns, principal, idempotency_key, schedule_id)

    async def _create(
        self,
        uow: UnitOfWork,
        req: ExportRequest,
        columns: list[str],
        principal: Principal | None,
        key: str | None,
        schedule_id: UUID | None,
    ) -> tuple[dict[str, Any], bool]:
        digest = self.request_hash(req)
        if schedule_id is None:  # a schedule's target was checked when it was created
            await self._check_notify(uow, req)
        if key is not None:
            prior = await uow.fetchrow(q.BY_IDEMPOTENCY_KEY, key)
            if prior is not None:
                if prior["request_hash"] != digest:
                    raise Conflict("this Idempotency-Key was used with a different request")
                return await self._get(uow, prior["id"]), False
        limits = limits_for(self.settings, uow.tenant.plan if uow.tenant else "")
        if schedule_id is None and await uow.fetchval(q.ACTIVE_EXPORTS) >= limits.max_concurrent:
            raise TooManyExports(
                f"the plan allows {limits.max_concurrent} exports at a time; retry when one ends",
                headers={"Retry-After": "30"},
            )
        eid = uuid.uuid4()
        inserted = await uow.fetchval(
            q.INSERT_EXPORT,
            eid,
            req.source,
            req.format,
            columns,
            req.filters,
            req.notify,
            key,
            digest,
            schedule_id,
            principal.subject if principal else None,
        )
        if inserted is None:  # a concurrent request with the same key won
            raise Conflict("a request with this Idempotency-Key is in flight; retry")
        await self.jobs.enqueue(uow, RUN, {"export_id": str(eid)}, job_id=eid)
        await self.jobs.add_schedule(
            uow, CLEANUP, self.settings.cleanup_cron, "UTC", {}, name=CLEANUP
        )
        uow.audit(
            "export.requested",
            f"export:{eid}",
            after=_audited(req, columns),
            details={"schedule_id": str(schedule_id)} if schedule_id is not None else None,
        )
        return await self._get(uow, eid), True

    async def _check_notify(self, uow: UnitOfWork, req: ExportRequest) -> None:
        """A notice target the notifier cannot deliver to (a webhook that is not one of the
        tenant's registered endpoints) is a 422 now, not a notice dropped when the export ends."""
        for channel, target in (req.notify or {}).items():
            why = await self.notifier.refusal(uow, channel, str(target))
            if why is not None:
                field = f"notify.{channel}"
                raise ValidationFailed(why, errors=[{"field": field, "message": why}])

    async def _get(self, uow: UnitOfWork, export_id: UUID) -> dict[str, Any]:
        row = await uow.fetchrow(q.GET_EXPORT, export_id)
        if row is None:
            raise NotFound(f"no export {export_id}")
        return self.present(dict(row))

    async def get(self, export_id: UUID) -> dict[str, Any]:
        async with self.db.unit_of_work(readonly=True) as uow:
            return await self._get(uow, export_id)

    async def list_exports(self, limit: int, cursor: str | None) -> dict[str, Any]:
        after: tuple[datetime | None, UUID | None] = (None, None)
        if cursor:
            try:
                ts, _, ident = cursor.partition("_")
                after = (datetime.fromisoformat(ts), UUID(ident))
            except ValueError:
                raise invalid_cursor("malformed") from None
            if after[0] is None or after[0].tzinfo is None:
                raise invalid_cursor("malformed")
        async with self.db.unit_of_work(readonly=True) as uow:
            rows = await uow.fetch(q.LIST_EXPORTS, after[0], after[1], limit + 1)
        items = [self.present(dict(r)) for r in rows[:limit]]
        nxt = None
        if len(rows) > limit:
            last = rows[limit - 1]
            nxt = f"{last['created_at'].isoformat()}_{last['id']}"
        return {"items": items, "next_cursor": nxt}

    async def cancel(self, export_id: UUID) -> dict[str, Any]:
        async with self.db.unit_of_work() as uow:
            export = await self._get(uow, export_id)
            if export["status"] in ("queued", "running"):
                await self.jobs.cancel(uow, export_id)
                await uow.execute(q.MARK_FINISHED, export_id, "cancelled", None)
                uow.audit(
                    "export.cancelled",
                    f"export:{export_id}",
                    before={"status": export["status"]},
                    after={"status": "cancelled"},
                )
            return await self._get(uow, export_id)

    def present(self, row: dict[str, Any]) -> dict[str, Any]:
        total, done = row["rows_total"], row["rows_done"]
        status = row["status"]
        if status == "succeeded":
            pct = 100.0
        elif total:
            pct = round(min(100.0, 100.0 * done / total), 1)
        else:
            pct = 0.0
        started, finished = row["started_at"], row["finished_at"]
        out: dict[str, Any] = {
            "id": str(row["id"]),
            "source": row["source"],
            "format": row["format"],
            "columns": list(row["columns"]),
            "filters": row["filters"],
            "notify": row["notify"],
            "status": status,
            "rows_total": total,
            "rows_done": total if status == "succeeded" else done,
            "progress": pct,
            "bytes": row["bytes"],
            "error": row["error"],
            "attempts": row["attempts"],
            "schedule_id": str(row["schedule_id"]) if row["schedule_id"] else None,
            "created_at": row["created_at"].isoformat(),
            "started_at": started.isoformat() if started else None,
            "finished_at": finished.isoformat() if finished else None,
            "duration_s": round((finished - started).total_seconds(), 3)
            if started and finished
            else None,
            "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
            "download_url": None,
        }
        if status == "succeeded" and row["file_key"] and row["expires_at"]:
            tenant = require_tenant()
            exp = int(min(time.time() + self.settings.link_ttl_s, row["expires_at"].timestamp()))
            token = links.sign(self.link_key, tenant.id, row["id"], exp)
            out["download_url"] = f"/api/v1/exports/{row['id']}/download?token={token}"
            out["download_url_expires_at"] = datetime.fromtimestamp(exp, UTC).isoformat()
        return out

    async def file_of(self, export_id: UUID) -> tuple[str, str, str]:
        """(storage key, filename, content type) of a finished export of the current tenant."""
        async with self.db.unit_of_work(readonly=True) as uow:
            row = await uow.fetchrow(q.GET_EXPORT, export_id)
        if row is None or row["status"] != "succeeded" or not row["file_key"]:
            raise NotFound(f"export {export_id} has no file to download")
        if row["expires_at"] is None or row["expires_at"].timestamp() < time.time():
            raise links.ExpiredLink("the export's file has expired and was (or will be) removed")
        fmt = row["format"]
        name = f"{row['source'].replace('.', '-')}-{str(export_id)[:8]}.{EXT[fmt]}"
        return row["file_key"], name, formats.CONTENT_TYPES[fmt]

    # -- worker side ------------------------------------------------------------------------
    async def _exec(self, stmt: str, *args: Any) -> Any:
        async with self.db.unit_of_work() as uow:
            return await uow.fetchval(stmt, *args)

    async def run(self, ctx: JobContext) -> None:
        eid = UUID(ctx.payload["export_id"])
        if await self._exec(q.MARK_RUNNING, eid, ctx.attempt) is None:
            return  # cancelled (or gone) before it started
        async with self.db.unit_of_work(readonly=True) as uow:
            row = await uow.fetchrow(q.GET_EXPORT, eid)
        assert row is not None
        req = ExportRequest(
            row["source"], row["format"], list(row["columns"]), row["filters"], None
        )
        try:
            source, columns = self.validate(req, None)
        except ProblemError as exc:
            raise PermanentJobError(exc.detail) from None
        cols = [source.by_name[c] for c in columns]
        compiled = compile_filters(req.filters, source)
        query = select_sql(source, columns, compiled)
        tenant = require_tenant()
        limits = limits_for(self.settings, tenant.plan)
        key = f"{tenant.id}/{eid}.{EXT[req.format]}"
        staging = self.storage.staging_path(key)

        async def report(rows: int) -> None:
            await self._exec(q.SET_PROGRESS, eid, rows)

        progress = formats.Throttle(report, self.settings.progress_interval_s)
        try:
            async with self.db.unit_of_work(readonly=True, isolation="repeatable_read") as uow:
                await uow.execute("SELECT set_config('TimeZone', 'UTC', true)")
                total = int(await uow.fetchval(count_sql(source, compiled), *compiled.params))
                if total > limits.max_rows:
                    raise formats.LimitExceeded(
                        f"{total} rows exceed the plan's limit of {limits.max_rows}"
                    )
                if req.format == "pdf" and total > limits.pdf_max_rows:
                    raise formats.LimitExceeded(
                        f"{total} rows exceed the PDF limit of {limits.pdf_max_rows}; "
                        "use csv, xlsx or parquet"
                    )
                await self._exec(q.SET_TOTAL, eid, total)
                args = (uow, query, compiled.params, cols, staging, progress)
                if req.format == "csv":
                    await formats.write_csv(*args, limits.max_bytes)
                elif req.format == "xlsx":
                    await formats.write_xlsx(*args, self.settings.xlsx_rows_per_sheet)
                elif req.format == "parquet":
                    await formats.write_parquet(*args)
                else:
                    await formats.write_pdf(*args, source.title or source.name)
            if staging.stat().st_size > limits.max_bytes:
                raise formats.LimitExceeded(f"the file exceeds the plan's {limits.max_bytes} bytes")
            size = await self.storage.commit(staging, key)
        finally:
            staging.unlink(missing_ok=True)
        if await self._exec(q.MARK_SUCCEEDED, eid, total, size, key, self.settings.retention_s):
            await self._notice(eid, row["notify"], "succeeded")
        else:  # cancelled while its file was being published: do not keep the file
            await self.storage.delete(key)

    async def on_failed(self, ctx: JobContext, error: str) -> None:
        eid = UUID(ctx.payload["export_id"])
        await self._exec(q.MARK_FINISHED, eid, "failed", error)
        async with self.db.unit_of_work(readonly=True) as uow:
            notify = await uow.fetchval("SELECT notify FROM exports WHERE id = $1", eid)
        await self._notice(eid, notify, "failed", error)

    async def on_cancelled(self, ctx: JobContext) -> None:
        await self._exec(q.MARK_FINISHED, UUID(ctx.payload["export_id"]), "cancelled", None)

    async def _notice(
        self, eid: UUID, notify: dict[str, Any] | None, status: str, error: str | None = None
    ) -> None:
        if not notify:
            return
        body = {"export_id": str(eid), "status": status, "error": error}
        for channel, target in notify.items():
            try:
                await self.notifier.notify(channel, str(target), f"Export {status}", body)
            except Exception:
                _log.exception("export %s: notice via %s failed", eid, channel)

    async def run_scheduled(self, ctx: JobContext) -> None:
        """A schedule fired: queue its run as a normal export tied to the schedule."""
        p = ctx.payload
        req = ExportRequest(
            p["source"], p["format"], p.get("columns"), p.get("filters") or {}, p.get("notify")
        )
        async with self.db.unit_of_work() as uow:
            try:
                await self.create(req, None, f"schedule:{ctx.id}", ctx.schedule_id, uow)
            except ProblemError as exc:
                raise PermanentJobError(exc.detail) from None

    async def cleanup(self, ctx: JobContext) -> None:
        """Delete the files of expired exports of this tenant (and stale staging files)."""
        removed = 0
        async with self.db.unit_of_work() as uow:
            for row in await uow.fetch(q.EXPIRED_FILES):
                await self.storage.delete(row["file_key"])
                await uow.execute(q.FORGET_FILE, row["id"])
                removed += 1
        await self.storage.sweep_staging(older_than_s=24 * 3600)
        if removed:
            _log.info("exports cleanup: %d expired files removed", removed)

    # -- schedules --------------------------------------------------------------------------
    async def create_schedule(
        self, req: ExportRequest, cron: str, timezone: str, principal: Principal | None
    ) -> dict[str, Any]:
        _, columns = self.validate(req, principal)
        payload = {
            "source": req.source,
            "format": req.format,
            "columns": columns,
            "filters": req.filters,
            "notify": req.notify,
        }
        async with self.db.unit_of_work() as uow:
            await self._check_notify(uow, req)
            sid = await self.jobs.add_schedule(uow, SCHEDULED, cron, timezone, payload)
            uow.audit(
                "export.schedule_created",
                f"export_schedule:{sid}",
                after={**_audited(req, columns), "cron": cron, "timezone": timezone},
            )
            return await self._schedule(uow, sid)

    async def _schedule(self, uow: UnitOfWork, sid: UUID) -> dict[str, Any]:
        row = await uow.fetchrow(job_sql.GET_SCHEDULE, sid)
        if row is None or row["kind"] != SCHEDULED:
            raise NotFound(f"no export schedule {sid}")
        return self._present_schedule(dict(row))

    @staticmethod
    def _present_schedule(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(row["id"]),
            **row["payload"],
            "cron": row["cron"],
            "timezone": row["timezone"],
            "enabled": row["enabled"],
            "next_run_at": row["next_run_at"].isoformat() if row["enabled"] else None,
            "last_run_at": row["last_run_at"].isoformat() if row["last_run_at"] else None,
            "created_at": row["created_at"].isoformat(),
        }

    async def schedules(self, limit: int) -> list[dict[str, Any]]:
        async with self.db.unit_of_work(readonly=True) as uow:
            rows = await uow.fetch(job_sql.LIST_SCHEDULES_OF_KIND, SCHEDULED, limit)
        return [self._present_schedule(dict(r)) for r in rows]

    async def schedule(self, sid: UUID) -> dict[str, Any]:
        async with self.db.unit_of_work(readonly=True) as uow:
            return await self._schedule(uow, sid)

    async def disable_schedule(self, sid: UUID) -> dict[str, Any]:
        async with self.db.unit_of_work() as uow:
            before = await uow.fetchrow(job_sql.GET_SCHEDULE, sid)
            if await uow.fetchval(job_sql.DISABLE_SCHEDULE, sid, SCHEDULED) is None:
                raise NotFound(f"no export schedule {sid}")
            uow.audit(
                "export.schedule_disabled",
                f"export_schedule:{sid}",
                before={"enabled": before["enabled"] if before is not None else None},
                after={"enabled": False},
            )
            return await self._schedule(uow, sid)

    async def runs(self, sid: UUID, limit: int) -> list[dict[str, Any]]:
        async with self.db.unit_of_work(readonly=True) as uow:
            await self._schedule(uow, sid)
            rows = await uow.fetch(q.LIST_RUNS, sid, limit)
        return [self.present(dict(r)) for r in rows]
