"""The job runner against real PostgreSQL: claim under RLS, retries, cancellation, leases,
schedules, and tenant context inside handlers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.jobs import JobContext, JobRunner, JobsSettings, PermanentJobError
from tenantry.kernel.observability import metrics, tracing
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import require_tenant, tenant_scope
from tenantry.kernel.tenancy.model import Tenant
from tests.conftest import MakeTenant

FAST = JobsSettings(lease_s=1.5, backoff_base_s=0, poll_interval_s=0.1, max_attempts=3)


def runner(platform: Platform) -> JobRunner:
    return JobRunner(platform.db, platform.catalog, FAST)


async def enqueue(platform: Platform, r: JobRunner, t: Tenant, kind: str, **kw: Any) -> UUID:
    with tenant_scope(t):
        async with platform.db.unit_of_work() as uow:
            return await r.enqueue(uow, kind, kw)


async def status(platform: Platform, r: JobRunner, t: Tenant, jid: UUID) -> dict[str, Any]:
    with tenant_scope(t):
        async with platform.db.unit_of_work() as uow:
            job = await r.get(uow, jid)
    assert job is not None
    return job


async def test_jobs_run_in_their_tenant_context_in_every_mode(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    tenants = [(await make_tenant(m)).tenant for m in ("shared", "schema", "database")]
    r = runner(platform)
    seen: dict[UUID, UUID] = {}

    traces: set[str] = set()

    async def record(ctx: JobContext) -> None:
        seen[ctx.id] = require_tenant().id
        ids = tracing.current_ids()  # each run in a trace of its own (its log lines carry it)
        assert ids is not None
        traces.add(ids[0])
        async with platform.db.unit_of_work() as uow:  # RLS: only its own jobs are visible
            owners = {row[0] for row in await uow.fetch("SELECT DISTINCT tenant_id FROM jobs")}
        assert owners == {ctx.tenant.id}

    r.register("t.record", record)
    jobs = {await enqueue(platform, r, t, "t.record"): t.id for t in tenants}
    assert await r.run_pending(tenants) == 3
    assert seen == jobs
    assert len(traces) == 3
    for jid, tid in jobs.items():
        t = next(t for t in tenants if t.id == tid)
        assert (await status(platform, r, t, jid))["status"] == "succeeded"


async def test_retries_then_fails_and_permanent_errors(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = (await make_tenant()).tenant
    r = runner(platform)
    calls: list[int] = []
    failed: list[str] = []

    async def flaky(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        raise RuntimeError("boom")

    async def on_failed(ctx: JobContext, why: str) -> None:
        failed.append(why)

    async def bad(ctx: JobContext) -> None:
        raise PermanentJobError("no")

    r.register("t.flaky", flaky, on_failed=on_failed)
    r.register("t.bad", bad)
    reported: list[tuple[BaseException, dict[str, Any]]] = []
    r.error_hooks.append(lambda exc, context: reported.append((exc, context)))
    j1 = await enqueue(platform, r, t, "t.flaky")
    j2 = await enqueue(platform, r, t, "t.bad")
    await r.run_pending([t])
    assert calls == [1, 2, 3]
    assert failed == ["RuntimeError: boom"]
    # Every failed attempt goes to the error hooks (error tracking); a permanent error is the
    # job's own verdict, not an unhandled exception.
    assert [c["attempt"] for _, c in reported] == [1, 2, 3]
    assert {(c["job"], c["job_id"], c["tenant_id"]) for _, c in reported} == {
        ("t.flaky", str(j1), str(t.id))
    }
    s1 = await status(platform, r, t, j1)
    assert (s1["status"], s1["attempts"]) == ("failed", 3)
    s2 = await status(platform, r, t, j2)
    assert (s2["status"], s2["attempts"], s2["last_error"]) == ("failed", 1, "no")


async def test_cancel_queued_and_running(platform: Platform, make_tenant: MakeTenant) -> None:
    t = (await make_tenant()).tenant
    r = runner(platform)
    started = asyncio.Event()
    cancelled: list[UUID] = []

    async def slow(ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(30)

    async def on_cancelled(ctx: JobContext) -> None:
        cancelled.append(ctx.id)

    r.register("t.slow", slow, on_cancelled=on_cancelled)
    queued = await enqueue(platform, r, t, "t.slow")
    with tenant_scope(t):
        async with platform.db.unit_of_work() as uow:
            assert await r.cancel(uow, queued) == "cancelled"
    jid = await enqueue(platform, r, t, "t.slow")
    ctx = await r._claim(t)
    assert ctx is not None
    assert ctx.id == jid
    task = asyncio.create_task(r.run_one(ctx))
    await started.wait()
    with tenant_scope(t):
        async with platform.db.unit_of_work() as uow:
            assert await r.cancel(uow, jid) == "running"
    assert await asyncio.wait_for(task, 5) == "cancelled"
    assert cancelled == [jid]
    assert (await status(platform, r, t, jid))["status"] == "cancelled"


async def test_expired_lease_is_claimed_again(platform: Platform, make_tenant: MakeTenant) -> None:
    t = (await make_tenant()).tenant
    dead, alive = runner(platform), runner(platform)
    ran: list[int] = []

    async def job(ctx: JobContext) -> None:
        ran.append(ctx.attempt)

    dead.register("t.job", job)
    alive.register("t.job", job)
    jid = await enqueue(platform, dead, t, "t.job")
    assert await dead._claim(t) is not None  # claimed, then the "worker dies"
    assert await alive._claim(t) is None  # lease still valid: not claimable
    await asyncio.sleep(FAST.lease_s + 0.3)
    ctx = await alive._claim(t)
    assert ctx is not None
    assert ctx.id == jid
    assert ctx.attempt == 2
    assert await alive.run_one(ctx) == "succeeded"
    assert ran == [2]


async def test_worker_loop_and_schedules(platform: Platform, make_tenant: MakeTenant) -> None:
    t = (await make_tenant()).tenant
    r = runner(platform)
    done = asyncio.Event()
    payloads: list[dict[str, Any]] = []

    async def tick(ctx: JobContext) -> None:
        payloads.append(ctx.payload)
        done.set()

    r.register("t.tick", tick)
    with tenant_scope(t):
        async with platform.db.unit_of_work() as uow:
            sid = await r.add_schedule(uow, "t.tick", "* * * * *", "Europe/Paris", {"x": 1})
            with pytest.raises(ValidationFailed, match="never fires"):
                await r.add_schedule(uow, "t.tick", "0 0 30 2 *")
            with pytest.raises(ValidationFailed, match="timezone"):
                await r.add_schedule(uow, "t.tick", "* * * * *", "Mars/Olympus")
            await uow.execute(
                "UPDATE job_schedules SET next_run_at = now() - interval '1 s' WHERE id = $1", sid
            )
    stop = asyncio.Event()
    loop = asyncio.create_task(r.work(stop))
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10)
    assert payloads[0]["x"] == 1
    assert "scheduled_for" in payloads[0]
    with tenant_scope(t):
        async with platform.db.unit_of_work() as uow:
            nxt = await uow.fetchval(
                "SELECT next_run_at > now() FROM job_schedules WHERE id=$1", sid
            )
    assert nxt


async def test_the_platforms_job_failures_are_tracked_errors(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    t = (await make_tenant()).tenant
    kind = f"t.tracked-{uuid.uuid4().hex[:8]}"

    async def broken(ctx: JobContext) -> None:
        raise LookupError(f"no such thing in {ctx.kind}")

    platform.jobs.register(kind, broken)
    jid = await enqueue(platform, platform.jobs, t, kind)
    await platform.jobs.run_pending([t])
    await platform.observability.errors.flush()
    groups = [
        g
        for g in await platform.observability.errors.list(limit=500)
        if g["message"] == f"no such thing in {kind}"
    ]
    assert len(groups) == 1
    shown = await platform.observability.errors.show(groups[0]["id"])
    assert shown is not None
    occurrence = shown["recent"][0]
    assert occurrence["tenant_id"] == str(t.id)
    assert occurrence["context"]["job_id"] == str(jid)
    assert len(occurrence["trace_id"]) == 32  # the job's own trace


async def test_jobs_queued_gauge_counts_queued_jobs_by_kind(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    a, b = (await make_tenant()).tenant, (await make_tenant("schema")).tenant
    r = runner(platform)
    kind = f"t.later-{uuid.uuid4().hex[:8]}"
    later = datetime.now(UTC) + timedelta(hours=1)
    jobs = []
    for t in (a, a, b):
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                jobs.append((t, await r.enqueue(uow, kind, run_at=later)))
    assert (await r.measure([a, b]))[kind] == 3
    assert metrics.REGISTRY.get_sample_value("tenantry_jobs_queued", {"kind": kind}) == 3
    for t, jid in jobs:
        with tenant_scope(t):
            async with platform.db.unit_of_work() as uow:
                assert await r.cancel(uow, jid) is not None
    await r.measure([a, b])
    assert metrics.REGISTRY.get_sample_value("tenantry_jobs_queued", {"kind": kind}) == 0
