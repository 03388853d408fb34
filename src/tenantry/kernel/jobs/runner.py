"""The PostgreSQL-backed job runner: enqueue, claim (FOR UPDATE SKIP LOCKED), leases and
heartbeats, retries with exponential backoff, cancellation, cron schedules.

Jobs are tenant-owned rows (``jobs`` in every tenant store, RLS forced by the migration
runner). **How a worker claims across tenants safely:** the worker holds no privilege a
request does not have. It connects as the application role (no SUPERUSER, no BYPASSRLS), reads
the list of active tenants from the catalog, and for each tenant opens that tenant's own unit
of work (``tenant_scope`` + ``Database.unit_of_work``: the store's pool, ``app.tenant_id`` and
the search_path set transaction-locally) and claims at most one job there with
``FOR UPDATE SKIP LOCKED``. RLS therefore limits the claim to that tenant's rows, and the job's
handler runs inside the same ``tenant_scope``, so every read it makes is filtered by RLS exactly
as it would be for an API request of that tenant. There is no cross-tenant query anywhere:
a bug in a handler cannot read another tenant's rows, because its transactions carry only its
own tenant id. Database-mode tenants are covered by the same loop (their unit of work opens
the pool of their own database). The cost is one small indexed query per active tenant per
poll when idle; NOTIFY on ``tenantry_jobs`` wakes the loop early for main-database tenants.

**Leases.** A claimed job carries ``lease_until``; a heartbeat task extends it every third of
the lease. A worker that dies (SIGKILL, OOM, lost host) stops heart-beating; once the lease
expires the job is claimable again and counts one more attempt. A worker that finds its lease
gone (the heartbeat updates no row) cancels its own run so two workers never finish one job.

**Retries.** An exception re-queues the job with ``backoff_base_s * 2**(attempt-1)`` (capped)
until ``max_attempts``; ``PermanentJobError`` fails it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from tenantry.kernel.config import JobsSettings as JobsSettings
from tenantry.kernel.db.errors import DRIVER_ERRORS, database_unavailable
from tenantry.kernel.db.listener import backoff_delay
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.errors import TenantryError
from tenantry.kernel.hooks import ErrorHook, call_hooks
from tenantry.kernel.jobs import sql
from tenantry.kernel.jobs.cron import next_fire
from tenantry.kernel.observability import metrics, tracing
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.model import Tenant, TenantStatus

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.tenancy.catalog import TenantCatalog

_log = logging.getLogger("tenantry.jobs")


class PermanentJobError(TenantryError):
    """A job failure that retrying cannot fix (bad request, limit exceeded)."""


class JobCancelled(TenantryError):
    """Raised inside a handler (via CancelledError) when the job was cancelled."""


@dataclass
class JobContext:
    """What a handler gets. It runs inside ``tenant_scope(tenant)``: use the unit of work."""

    id: UUID
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    tenant: Tenant
    schedule_id: UUID | None = None
    created_at: datetime | None = None

    @property
    def final_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


JobFn = Callable[[JobContext], Coroutine[Any, Any, None]]
FailFn = Callable[[JobContext, str], Awaitable[None]]
CancelFn = Callable[[JobContext], Awaitable[None]]


@dataclass
class JobHandler:
    run: JobFn
    #: Called (in the tenant's scope) when the job fails for good.
    on_failed: FailFn | None = None
    #: Called when the job is cancelled while running (queued jobs never start).
    on_cancelled: CancelFn | None = None


@dataclass
class _Running:
    task: asyncio.Task[None]
    cancel_requested: bool = False
    lease_lost: bool = False


@dataclass
class WorkerStats:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)


class JobRunner:
    def __init__(self, db: Database, catalog: TenantCatalog, settings: JobsSettings) -> None:
        self.db = db
        self.catalog = catalog
        self.settings = settings
        self.handlers: dict[str, JobHandler] = {}
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stats = WorkerStats()
        self._wake = asyncio.Event()
        self._measured_kinds: set[str] = set()
        #: Wake-ups by a NOTIFY of an enqueue (not the polling timer): tests tell them apart.
        self.notified = 0
        #: Called (never raising) with ``(exc, context)`` for every failed attempt of a job:
        #: error tracking.
        self.error_hooks: list[ErrorHook] = []

    # -- registration -----------------------------------------------------------------------
    def register(
        self,
        kind: str,
        run: JobFn,
        *,
        on_failed: FailFn | None = None,
        on_cancelled: CancelFn | None = None,
    ) -> None:
        if kind in self.handlers:
            raise ValueError(f"job kind {kind!r} registered twice")
        self.handlers[kind] = JobHandler(run, on_failed, on_cancelled)

    # -- producer side (inside the caller's unit of work: atomic with its writes) -----------
    async def enqueue(
        self,
        uow: UnitOfWork,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        job_id: UUID | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        schedule_id: UUID | None = None,
    ) -> UUID:
        jid = job_id or uuid.uuid4()
        await uow.execute(
            sql.ENQUEUE,
            uow.tenant_id,
            jid,
            kind,
            payload or {},
            max_attempts or self.settings.max_attempts,
            run_at,
            schedule_id,
        )
        await uow.notify(sql.NOTIFY_CHANNEL, str(uow.tenant_id))
        return jid

    async def cancel(self, uow: UnitOfWork, job_id: UUID) -> str | None:
        """Cancel a job: a queued one at once, a running one at its next heartbeat.
        Returns the job's status after the call, None if it was already finished/absent."""
        status: str | None = await uow.fetchval(sql.CANCEL, job_id)
        return status

    async def get(self, uow: UnitOfWork, job_id: UUID) -> dict[str, Any] | None:
        row = await uow.fetchrow(sql.GET, job_id)
        return dict(row) if row else None

    async def add_schedule(
        self,
        uow: UnitOfWork,
        kind: str,
        cron: str,
        timezone: str = "UTC",
        payload: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        schedule_id: UUID | None = None,
    ) -> UUID:
        """Store a cron schedule (validated: a never-firing cron is a 422)."""
        sid = schedule_id or uuid.uuid4()
        first = next_fire(cron, timezone)
        await uow.execute(
            sql.INSERT_SCHEDULE,
            uow.tenant_id,
            sid,
            name,
            kind,
            payload or {},
            cron,
            timezone,
            first,
        )
        return sid

    # -- worker side ------------------------------------------------------------------------
    async def _tenants(self) -> list[Tenant]:
        return [t for t in await self.catalog.ready() if t.status is TenantStatus.ACTIVE]

    async def _claim(self, tenant: Tenant) -> JobContext | None:
        kinds = list(self.handlers)
        with tenant_scope(tenant):
            async with self.db.unit_of_work() as uow:
                row = await uow.fetchrow(sql.CLAIM, self.worker_id, self.settings.lease_s, kinds)
                if row is None:
                    return None
                ctx = JobContext(
                    id=row["id"],
                    kind=row["kind"],
                    payload=dict(row["payload"]),
                    attempt=row["attempts"],
                    max_attempts=row["max_attempts"],
                    tenant=tenant,
                    schedule_id=row["schedule_id"],
                    created_at=row["created_at"],
                )
                if row["cancel_requested"]:
                    await uow.execute(sql.FINISH, ctx.id, self.worker_id, "cancelled", None)
                    return None
                if row["attempts"] > row["max_attempts"]:
                    # Its lease expired on the last attempt: the worker died every time.
                    msg = "worker lost (lease expired) on every attempt"
                    await uow.execute(sql.FINISH, ctx.id, self.worker_id, "failed", msg)
                    handler = self.handlers[ctx.kind]
                    if handler.on_failed:
                        await handler.on_failed(ctx, msg)
                    return None
        self.stats.claimed += 1
        return ctx

    async def _update(self, tenant: Tenant, stmt: str, *args: Any) -> Any:
        with tenant_scope(tenant):
            async with self.db.unit_of_work() as uow:
                return await uow.fetchval(stmt, *args)

    async def _record(self, tenant: Tenant, stmt: str, *args: Any) -> Any:
        """``_update`` for a job's outcome, retried with backoff while the database is
        unavailable (about 10 s): an outcome lost to a dropped connection would run the job
        again once its lease expires. The statements check the worker id, so a retry after a
        COMMIT that did go through changes nothing."""
        for attempt in range(8):
            try:
                return await self._update(tenant, stmt, *args)
            except Exception as exc:
                if attempt == 7 or not database_unavailable(exc):
                    raise
                _log.warning("job outcome not recorded yet (%s); retrying", exc)
                await asyncio.sleep(backoff_delay(attempt, 0.1, 2.0))
        raise AssertionError("unreachable")

    async def _heartbeat(self, ctx: JobContext, running: _Running) -> None:
        interval = self.settings.lease_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                with tenant_scope(ctx.tenant):
                    async with self.db.unit_of_work() as uow:
                        row = await uow.fetchrow(
                            sql.HEARTBEAT, ctx.id, self.worker_id, self.settings.lease_s
                        )
            except DRIVER_ERRORS as exc:
                _log.warning("heartbeat of job %s failed: %s", ctx.id, exc)
                continue
            if row is None:
                running.lease_lost = True
                running.task.cancel()
                return
            if row["cancel_requested"]:
                running.cancel_requested = True
                running.task.cancel()
                return

    def _report(self, exc: BaseException, ctx: JobContext) -> None:
        context: dict[str, Any] = {
            "job": ctx.kind,
            "job_id": str(ctx.id),
            "attempt": ctx.attempt,
            "tenant_id": str(ctx.tenant.id),
        }
        call_hooks(self.error_hooks, exc, context, what="job error")

    async def _traced(self, handler: JobHandler, ctx: JobContext) -> None:
        """Run the job in a trace of its own: a ``job <kind>`` span when spans are recorded
        (exports show up in the span store), the trace ids in its log lines, its tracked
        errors and the messages it publishes either way. A failed attempt is reported to the
        error hooks here, inside the trace (a PermanentJobError is the job's own verdict)."""
        attributes = {
            "job.id": str(ctx.id),
            "job.attempt": ctx.attempt,
            "tenant.id": str(ctx.tenant.id),
        }
        with tracing.continue_trace({}, f"job {ctx.kind}", tracing.SpanKind.INTERNAL, **attributes):
            try:
                await handler.run(ctx)
            except PermanentJobError:
                raise
            except Exception as exc:
                self._report(exc, ctx)
                raise

    async def run_one(self, ctx: JobContext) -> str:
        """Run a claimed job to its end state; returns it (succeeded/failed/queued/...)."""
        handler = self.handlers[ctx.kind]
        with tenant_scope(ctx.tenant):
            task: asyncio.Task[None] = asyncio.create_task(self._traced(handler, ctx))
        running = _Running(task)
        hb = asyncio.create_task(self._heartbeat(ctx, running))
        outcome: str
        error: str | None = None
        try:
            await task
            outcome = "succeeded"
        except asyncio.CancelledError:
            if not (running.cancel_requested or running.lease_lost):
                hb.cancel()
                raise  # the worker itself is stopping: the lease expires, the job is retried
            outcome = "cancelled" if running.cancel_requested else "lost"
        except PermanentJobError as exc:
            outcome, error = "failed", str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            outcome = "failed" if ctx.final_attempt else "retry"
            _log.warning("job %s (%s) attempt %d failed: %s", ctx.id, ctx.kind, ctx.attempt, error)
        finally:
            hb.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hb
        if outcome == "lost":
            return outcome
        if outcome == "retry":
            delay = min(
                self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (ctx.attempt - 1)
            )
            await self._record(ctx.tenant, sql.RETRY, ctx.id, self.worker_id, delay, error)
            self.stats.retried += 1
            return "queued"
        await self._record(ctx.tenant, sql.FINISH, ctx.id, self.worker_id, outcome, error)
        with tenant_scope(ctx.tenant):
            if outcome == "failed":
                self.stats.failed += 1
                if handler.on_failed:
                    await handler.on_failed(ctx, error or "failed")
            elif outcome == "cancelled":
                self.stats.cancelled += 1
                if handler.on_cancelled:
                    await handler.on_cancelled(ctx)
            else:
                self.stats.succeeded += 1
        return outcome

    async def fire_schedules(self, tenant: Tenant) -> int:
        """Enqueue a job for every due schedule of ``tenant``; a missed run fires once."""
        fired = 0
        with tenant_scope(tenant):
            async with self.db.unit_of_work() as uow:
                for row in await uow.fetch(sql.DUE_SCHEDULES):
                    payload = {
                        **dict(row["payload"]),
                        "scheduled_for": row["next_run_at"].isoformat(),
                    }
                    await self.enqueue(uow, row["kind"], payload, schedule_id=row["id"])
                    try:
                        nxt = next_fire(row["cron"], row["timezone"])
                    except TenantryError:
                        nxt = None
                    if nxt is None:
                        await uow.execute(sql.DISABLE_SCHEDULE, row["id"], row["kind"])
                    else:
                        await uow.execute(sql.ADVANCE_SCHEDULE, row["id"], nxt)
                    fired += 1
        return fired

    async def run_pending(self, tenants: Iterable[Tenant] | None = None) -> int:
        """Claim and run jobs one by one until none is runnable (tests, CLI ``--once``)."""
        done = 0
        for tenant in list(tenants) if tenants is not None else await self._tenants():
            await self.fire_schedules(tenant)
            while (ctx := await self._claim(tenant)) is not None:
                await self.run_one(ctx)
                done += 1
        return done

    async def measure(self, tenants: Iterable[Tenant]) -> dict[str, int]:
        """Set the jobs-queued gauge (by kind, over ``tenants``): one count per tenant on
        its queued-jobs index. Kinds seen before and now empty go back to 0."""
        counts: dict[str, int] = dict.fromkeys(self._measured_kinds, 0)
        for t in tenants:
            try:
                with tenant_scope(t):
                    async with self.db.unit_of_work() as uow:
                        rows = await uow.fetch(sql.QUEUED_BY_KIND)
            except DRIVER_ERRORS:
                continue
            for row in rows:
                counts[row["kind"]] = counts.get(row["kind"], 0) + row["n"]
        for kind, n in counts.items():
            metrics.JOBS_QUEUED.labels(kind).set(n)
        self._measured_kinds.update(counts)
        return counts

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        # An empty payload comes after the LISTEN connection re-opened (kernel/db/listener):
        # a wake-up all the same, since jobs may have been enqueued meanwhile.
        if payload:
            self.notified += 1
        self._wake.set()

    async def work(self, stop: asyncio.Event, concurrency: int | None = None) -> None:
        """The worker loop: until ``stop`` is set, keep up to ``concurrency`` jobs running."""
        slots = concurrency or self.settings.concurrency
        running: set[asyncio.Task[str]] = set()
        # Over the process's reconnecting LISTEN connection (kernel/db/listener).
        await self.db.listen(sql.NOTIFY_CHANNEL, self._on_notify)
        loop = asyncio.get_running_loop()
        last_schedules = 0.0
        last_measure = -metrics.METRICS_INTERVAL_S
        offset = 0
        failures = 0
        try:
            while not stop.is_set():
                try:
                    tenants = await self._tenants()
                    if loop.time() - last_measure >= metrics.METRICS_INTERVAL_S:
                        last_measure = loop.time()
                        await self.measure(tenants)
                    if loop.time() - last_schedules >= self.settings.schedule_interval_s:
                        last_schedules = loop.time()
                        for t in tenants:
                            try:
                                await self.fire_schedules(t)
                            except DRIVER_ERRORS as exc:
                                _log.warning("schedules of %s: %s", t.slug, exc)
                    claimed = False
                    if tenants:
                        offset = (offset + 1) % len(tenants)  # fairness: rotate the start
                        for t in tenants[offset:] + tenants[:offset]:
                            if len(running) >= slots:
                                break
                            try:
                                ctx = await self._claim(t)
                            except DRIVER_ERRORS as exc:
                                _log.warning("claim in %s: %s", t.slug, exc)
                                continue
                            if ctx is not None:
                                claimed = True
                                task = asyncio.create_task(self.run_one(ctx))
                                task.add_done_callback(_log_job_failure)
                                running.add(task)
                    if running and len(running) >= slots:
                        _done, pending = await asyncio.wait(
                            running,
                            timeout=self.settings.poll_interval_s,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                        running = set(pending)
                        continue
                    running = {task for task in running if not task.done()}
                    if claimed:
                        continue
                    self._wake.clear()
                    waiters = [
                        asyncio.create_task(self._wake.wait()),
                        asyncio.create_task(stop.wait()),
                    ]
                    await asyncio.wait(
                        waiters,
                        timeout=self.settings.poll_interval_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    for w in waiters:
                        w.cancel()
                    await asyncio.gather(*waiters, return_exceptions=True)
                    failures = 0
                except Exception as exc:
                    # Never let a lost database (or anything else) end the worker for good:
                    # log, back off (0.1 s doubling to 5 s), go on with the next round.
                    failures += 1
                    delay = backoff_delay(failures - 1, 0.1, 5.0)
                    if database_unavailable(exc):
                        _log.warning("job worker: database unavailable (%s); retrying", exc)
                    else:
                        _log.exception("job worker round failed; retrying in %.1fs", delay)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
        finally:
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.db.unlisten(sql.NOTIFY_CHANNEL, self._on_notify)


def _log_job_failure(task: asyncio.Task[str]) -> None:
    """A ``run_one`` that raised (its outcome could not be recorded): the job's lease expires
    and it runs again. Logged here, since nobody awaits the task."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.warning(
            "job outcome lost (%s: %s); it runs again after its lease", type(exc).__name__, exc
        )
