"""``Platform.observability``: wiring of logs, metrics, traces, error tracking and SLOs, and
the background tasks that flush them and keep their tables tidy.

Background tasks (started by ``Platform.start``, i.e. ``tenantry serve``; stopped by
``Platform.close``): a flusher (per-minute request metrics and span batches, every
``observability.flush_interval_s``) and a maintenance job (every
``observability.maintenance_interval_s`` and once at start): error-occurrence partitions
created ahead / dropped after retention, span partitions likewise, request minutes older
than their retention deleted, plus jobs others register with ``add_maintenance`` (the cache
sweeper). A failing job is logged and captured as an error; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.observability import logs, metrics, tracing
from tenantry.kernel.observability import sql as q
from tenantry.kernel.observability.accounting import RequestAccounting
from tenantry.kernel.observability.errors import ErrorTracker
from tenantry.kernel.observability.middleware import route_template
from tenantry.kernel.observability.slo import RequestRecorder

if TYPE_CHECKING:
    from starlette.requests import Request

    from tenantry.kernel.db.database import Database
    from tenantry.kernel.observability.settings import ObservabilitySettings
    from tenantry.kernel.tenancy.audit import PlatformAudit

OBSERVABILITY_MIGRATIONS = "tenantry.kernel.observability.migrations"
_log = logging.getLogger("tenantry.observability")
Job = Callable[[], Awaitable[Any]]


class Observability:
    """Given what it reads (its settings, the environment's name, the database), never the
    platform: the platform wires its middleware, router and error hooks (kernel/platform)."""

    def __init__(
        self,
        settings: ObservabilitySettings,
        environment: str,
        db: Database,
        audit: PlatformAudit,
    ) -> None:
        self.db = db
        self.settings = settings
        self.errors = ErrorTracker(db, settings.errors, environment, audit=audit)
        self.recorder = RequestRecorder()
        self.accounting = RequestAccounting(self.recorder)
        self.spans: tracing.PgSpanBuffer | None = None
        self.maintenance_jobs: dict[str, Job] = {}
        self._tasks: list[asyncio.Task[None]] = []
        tracing.install_db_hook(self.settings.tracing)

    def add_maintenance(self, name: str, job: Job) -> None:
        """Run ``job`` with the periodic maintenance (e.g. the cache's expired-row sweep)."""
        self.maintenance_jobs[name] = job

    # -- error hook for HTTP ----------------------------------------------------------------
    def on_unhandled(self, request: Request, exc: Exception) -> None:
        state = request.scope.get("state", {})
        ctx: dict[str, Any] = dict(state.get("obs") or {})
        ctx.setdefault("request_id", state.get("request_id"))
        route = route_template(request.scope)
        ctx["request"] = {"method": request.method, "path": request.url.path, "route": route}
        self.errors.capture_exception(exc, ctx, source="http")

    def consumer_error(self, exc: BaseException, context: dict[str, Any]) -> None:
        self.capture_exception(exc, context, source="consumer")

    def background_job_error(self, exc: BaseException, context: dict[str, Any]) -> None:
        self.capture_exception(exc, context, source="job")

    def capture_exception(
        self, exc: BaseException, context: dict[str, Any] | None = None, source: str = "app"
    ) -> Any:
        """For jobs and consumers: record ``exc`` with the ambient request/trace context."""
        ctx = dict(context or {})
        ids = tracing.current_ids()
        if ids is not None:
            ctx.setdefault("trace_id", ids[0])
        from tenantry.kernel.tenancy.context import current_principal, current_tenant

        tenant, principal = current_tenant(), current_principal()
        if tenant is not None:
            ctx.setdefault("tenant_id", str(tenant.id))
        if principal is not None:
            ctx.setdefault("principal", principal.subject)
        return self.errors.capture_exception(exc, ctx, source=source)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self._tasks:
            return
        metrics.POOLS.databases.append(self.db)
        self.spans = tracing.setup(self.settings.tracing)
        self._tasks = [
            asyncio.create_task(self._loop(self.flush, self.settings.flush_interval_s, False)),
            asyncio.create_task(
                self._loop(self.maintenance, self.settings.maintenance_interval_s, True)
            ),
            asyncio.create_task(self._flush_logs()),
        ]

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.accounting.drain()
        if tasks:
            with contextlib.suppress(Exception):
                await self.flush()
        await self.errors.flush()
        logs.flush()
        with contextlib.suppress(ValueError):
            metrics.POOLS.databases.remove(self.db)

    async def _flush_logs(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.accounting.drain()
            logs.flush()

    async def _loop(self, job: Job, interval: float, run_first: bool) -> None:
        if not run_first:
            await asyncio.sleep(interval)
        name = getattr(job, "__name__", "job")
        while True:
            try:
                if run_first:  # maintenance: one structured log line per run
                    async with logs.job_context(name, on_error=self._job_error):
                        await job()
                else:
                    await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not run_first:
                    self._job_error(exc, {"job": name})
            await asyncio.sleep(interval)

    def _job_error(self, exc: BaseException, context: dict[str, Any]) -> None:
        _log.warning("background job %s failed: %s", context.get("job"), type(exc).__name__)
        self.errors.capture_exception(exc, context, "job")

    async def flush(self) -> None:
        """Write buffered request minutes and spans (called by the flusher task)."""
        self.accounting.drain()
        await self.recorder.flush(self.db)
        if self.spans is not None:
            await self.spans.flush_to(self.db)

    async def maintenance(self) -> dict[str, Any]:
        """Partitions ahead / retention, old request minutes, registered jobs."""
        e, t = self.settings.errors, self.settings.tracing
        out: dict[str, Any] = {}
        async with admin_connection(self.db) as conn:
            await conn.execute(q.SET_SEARCH_PATH)
            out["error_partitions_created"] = await conn.fetchval(
                q.ENSURE_ERROR_PARTITIONS, e.months_ahead
            )
            out["error_partitions_dropped"] = await conn.fetchval(
                q.DROP_ERROR_PARTITIONS, e.retention_months
            )
            out["span_partitions_created"] = await conn.fetchval(q.ENSURE_SPAN_PARTITIONS, 2)
            out["span_partitions_dropped"] = await conn.fetchval(
                q.DROP_SPAN_PARTITIONS, t.retention_days
            )
            status = await conn.execute(
                q.DELETE_OLD_REQUEST_MINUTES,
                timedelta(days=self.settings.request_metrics_retention_days),
            )
            out["request_minutes_deleted"] = int(status.split()[-1])
        for name, job in self.maintenance_jobs.items():
            out[name] = await job()
        return out
