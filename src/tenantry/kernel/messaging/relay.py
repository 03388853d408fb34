"""The outbox relay: delivers what units of work wrote to the outbox.

Wake-up: a unit of work that committed outbox rows wakes this process's relay at once (a
callback, kernel/messaging/outbox.OutboxWake) and other processes' relays by a coalesced
NOTIFY after its COMMIT: ``LISTEN tenantry_outbox`` on the main database and on every
database-mode tenant's database (payload: the tenant id). A polling fallback every
``poll_interval_s`` over every tenant means a lost wake-up only delays a message.

**Role and scope.** The relay runs as the ordinary application role (no BYPASSRLS) and claims
rows *per tenant*, inside that tenant's unit of work (``app.tenant_id`` set, the tenant's
search_path and database): RLS applies to the relay exactly as to a request, and the relay
needs no privilege the app does not already have. It learns which tenants to look at from
the tenant catalog (readable by the app role) and from the notifications' payloads. The
price is one claim query per tenant per poll; the gain is that a relay bug cannot mix
tenants' messages, and it covers shared, schema and database tenants by one code path.

Claiming: ``FOR UPDATE SKIP LOCKED`` in the claim transaction, held while the batch is
delivered, so several relays run side by side and none ever reads "ids after the last one
seen" (bigserial ids commit out of order). Delivered rows are marked (and pruned after
``retention_s``); a failed row gets ``attempts + 1`` and ``available_at`` pushed back
exponentially, and after ``max_attempts`` moves to ``outbox_dead``. Tenants are drained
round-robin one batch at a time and a failing row only delays itself, so one tenant's
poison message never blocks another tenant's (or the same tenant's later) messages.

In-process consumers of a batch run in the claim transaction itself: per consumer, in one
savepoint, the inbox rows in one statement and then the handlers; then the "delivered" mark,
one commit for all (a relay that dies mid-batch leaves neither an effect nor a mark behind).
If a handler fails, only that consumer's savepoint is rolled back (the other consumers' work
stands, so their external effects such as mail are not repeated) and that consumer's batch
is redone message by message, each in a savepoint, so only the failing message is retried. A
message whose in-process consumers succeeded but whose bus publish failed stays pending with
their inbox rows committed: its redelivery to them is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from tenantry.kernel.db.database import Database
from tenantry.kernel.db.errors import DRIVER_ERRORS, database_unavailable
from tenantry.kernel.db.listener import backoff_delay
from tenantry.kernel.db.privileged import tenant_unit_of_work
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.messaging import sql as q
from tenantry.kernel.messaging.config import MessagingSettings
from tenantry.kernel.messaging.dispatcher import Dispatcher, envelope_from_row
from tenantry.kernel.messaging.envelope import Envelope
from tenantry.kernel.messaging.outbox import CHANNEL
from tenantry.kernel.observability import metrics
from tenantry.kernel.tenancy.catalog import TenantCatalog, is_ready
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)
TRANSIENT = "bus unavailable: "


class BusPublisher(Protocol):
    async def publish(self, env: Envelope, consumers: list[str]) -> None:
        """Publish with a broker confirm; raise if the broker did not take it."""


@dataclass
class RelayStats:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    batches: int = 0
    lags_ms: list[float] = field(default_factory=list)


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base * 2^attempts (capped), times 0.5..1."""
    return float(min(cap, base * (2.0**attempts)) * (0.5 + random.random() / 2))


class Relay:
    def __init__(
        self,
        db: Database,
        catalog: TenantCatalog,
        dispatcher: Dispatcher,
        settings: MessagingSettings,
        bus: BusPublisher | None = None,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.dispatcher = dispatcher
        self.settings = settings
        self.bus = bus
        self.stats = RelayStats()
        self.record_lag = False
        self._wake = asyncio.Event()
        self._woken: set[UUID] = set()
        self._poll_now = False
        #: Wake-ups by NOTIFY (not by the polling timer): tests tell the two apart.
        self.notified = 0
        #: The databases whose ``tenantry_outbox`` this relay LISTENs to (over the process's
        #: reconnecting LISTEN connections: kernel/db/listener).
        self._listening: set[tuple[str, str | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_prune = 0.0
        self._last_measure = 0.0
        #: Test hook: called before each batch is delivered.
        self.before_batch: Callable[[Tenant, int], Awaitable[None]] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        self.dispatcher.outbox.wake.local.append(self._on_local)
        await self._listen(None)
        self._task = asyncio.create_task(self._run(), name="tenantry-outbox-relay")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        local = self.dispatcher.outbox.wake.local
        if self._on_local in local:
            local.remove(self._on_local)
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        listening, self._listening = self._listening, set()
        for server, database in listening:
            await self.db.unlisten(CHANNEL, self._on_notify, server=server, database=database)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _on_local(self, tenant_id: UUID) -> None:
        """A commit of this process wrote outbox rows of ``tenant_id``."""
        self._woken.add(tenant_id)
        self._wake.set()

    def _on_notify(self, _c: Any, _pid: int, _ch: str, payload: object) -> None:
        try:
            self._woken.add(UUID(str(payload)))
            self.notified += 1
        except ValueError:
            self._poll_now = True  # a re-connect (empty payload): look at every tenant
        self._wake.set()

    async def _listen(self, tenant: Tenant | None) -> None:
        """LISTEN on the tenant's database (once; the listener re-connects by itself and,
        after a re-connect, wakes the relay with an empty payload: every tenant is polled)."""
        key = (tenant.server, tenant.database) if tenant else ("default", None)
        if key in self._listening:
            return
        self._listening.add(key)
        await self.db.listen(CHANNEL, self._on_notify, server=key[0], database=key[1])

    # -- the loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        """Rounds until stopped; a failed round (a lost database included) is logged and the
        next one starts after a backoff (0.1 s doubling to 5 s): the loop never dies."""
        next_poll = 0.0
        failures = 0
        while not self._stopping:
            try:
                tenants: list[Tenant] = []
                polled = False
                if self._poll_now or time.monotonic() >= next_poll:
                    self._poll_now = False
                    next_poll = time.monotonic() + self.settings.poll_interval_s
                    tenants = await self._all_tenants()
                    polled = True
                    for t in tenants:
                        if t.database:
                            await self._listen(t)
                woken, self._woken = self._woken, set()
                self._wake.clear()
                for tid in woken:
                    found = await self.catalog.get(tid)
                    if (
                        found is not None
                        and is_ready(found)
                        and all(found.id != x.id for x in tenants)
                    ):
                        tenants.append(found)
                if tenants:
                    await self.drain(tenants)
                    await self._maybe_prune(tenants)
                if polled and time.monotonic() - self._last_measure >= metrics.METRICS_INTERVAL_S:
                    self._last_measure = time.monotonic()
                    await self.measure(tenants)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), max(0.0, next_poll - time.monotonic())
                    )
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if database_unavailable(exc):
                    _log.warning("outbox relay: database unavailable (%s); retrying", exc)
                else:
                    _log.exception("outbox relay round failed; retrying")
                self._poll_now = True  # the round was cut short: look at every tenant
                await asyncio.sleep(backoff_delay(failures - 1, 0.1, 5.0))

    async def _all_tenants(self) -> list[Tenant]:
        return await self.catalog.ready()

    async def drain(self, tenants: list[Tenant]) -> int:
        """Deliver everything due for ``tenants``: one batch per tenant per round, up to
        ``relay_concurrency`` tenants at once, so a slow tenant never holds up the others."""
        total = 0
        pending = list(tenants)
        gate = asyncio.Semaphore(self.settings.relay_concurrency)

        async def one(t: Tenant) -> int:
            async with gate:
                try:
                    return await self.run_batch(t)
                except DRIVER_ERRORS as exc:
                    _log.warning("relay: tenant %s store unavailable: %s", t.slug, exc)
                    return 0

        while pending and not self._stopping:
            counts = await asyncio.gather(*(one(t) for t in pending))
            total += sum(counts)
            pending = [
                t for t, n in zip(pending, counts, strict=True) if n >= self.settings.batch_size
            ]
        return total

    async def run_batch(self, tenant: Tenant) -> int:
        """Claim and deliver one batch of ``tenant``'s due messages; return how many."""
        s = self.settings
        with tenant_scope(tenant):
            async with tenant_unit_of_work(self.db, tenant) as claim:
                rows = await claim.fetch(q.CLAIM_OUTBOX, s.batch_size)
                if not rows:
                    return 0
                if self.before_batch is not None:
                    await self.before_batch(tenant, len(rows))
                envs = [envelope_from_row(r) for r in rows]
                failed = await self._deliver(claim, envs)
                ok_ids = [r["id"] for r, e in zip(rows, envs, strict=True) if e not in failed]
                if ok_ids:
                    await claim.execute(q.MARK_DELIVERED, ok_ids)
                for row, env in zip(rows, envs, strict=True):
                    error = failed.get(env)
                    if error is None:
                        continue
                    if error.startswith(TRANSIENT):
                        delay = backoff(0, s.backoff_base_s, s.backoff_max_s)
                        await claim.execute(q.RETRY_TRANSIENT, row["id"], error, delay)
                        self.stats.retried += 1
                    elif env.attempts + 1 >= s.max_attempts:
                        await claim.execute(q.MOVE_TO_DEAD, row["id"], error)
                        self.stats.dead += 1
                        _log.error("message %s (%s) is dead: %s", env.message_id, env.name, error)
                    else:
                        delay = backoff(env.attempts, s.backoff_base_s, s.backoff_max_s)
                        await claim.execute(q.RETRY_LATER, row["id"], error, delay)
                        self.stats.retried += 1
        self.stats.delivered += len(ok_ids)
        self.stats.batches += 1
        if self.record_lag:
            now = time.time()
            for r, e in zip(rows, envs, strict=True):
                if e not in failed:
                    self.stats.lags_ms.append((now - r["created_at"].timestamp()) * 1000)
        return len(rows)

    async def _deliver(self, claim: UnitOfWork, envs: list[Envelope]) -> dict[Envelope, str]:
        """In-process consumers run in the claim's own transaction, so their effects, their
        inbox rows and the rows' "delivered" mark commit together (or not at all). Each
        consumer's batch first in one savepoint (one inbox statement, then the handlers); if
        that fails, each message in a savepoint of its own, so a failure fails only that
        message for that consumer. Then bus edges are published
        (with confirms)."""
        failed: dict[Envelope, str] = {}
        by_consumer: dict[str, list[Envelope]] = {}
        for env in envs:
            for consumer in self.dispatcher.local_consumers(env):
                by_consumer.setdefault(consumer, []).append(env)
        for consumer, batch in by_consumer.items():
            try:
                async with claim.savepoint():
                    await self.dispatcher.deliver_batch(claim, batch, consumer)
                continue
            except Exception as exc:  # a handler's error (even OSError of SMTP/HTTP)
                _log.debug("batch of %s failed (%s); message by message", consumer, exc)
            for env in batch:
                try:
                    async with claim.savepoint():
                        await self.dispatcher.deliver(claim, env, consumer)
                except Exception as exc:
                    failed.setdefault(env, f"{consumer}: {type(exc).__name__}: {exc}")
                    self.dispatcher.report_failure(exc, env, consumer)
        for env in envs:
            if env in failed:
                continue
            consumers = self.dispatcher.bus_consumers(env)
            if not consumers:
                continue
            if self.bus is None:
                failed[env] = TRANSIENT + "bus edge but no broker connection in this relay"
                continue
            try:
                await asyncio.wait_for(self.bus.publish(env, consumers), 10)
            except Exception as exc:
                # The broker, not the message: retried without counting an attempt.
                failed[env] = f"{TRANSIENT}{type(exc).__name__}: {exc}"
        return failed

    async def measure(self, tenants: list[Tenant]) -> dict[str, tuple[int, float]]:
        """Set the outbox gauges: undelivered messages and the age of the oldest one, per
        store (``server/database``), over ``tenants`` (every tenant on a poll round); one
        count per tenant on its pending index. Returns ``{store: (depth, lag seconds)}``."""
        found: dict[str, tuple[int, datetime | None]] = {}
        for t in tenants:
            store = f"{t.server}/{t.database or 'main'}"
            try:
                async with tenant_unit_of_work(self.db, t) as uow:
                    row = await uow.fetchrow(q.OUTBOX_PENDING)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                continue  # an unreachable store keeps its last figures
            n, oldest = found.get(store, (0, None))
            if row is not None and row["n"]:
                first = row["oldest"]
                n, oldest = n + row["n"], first if oldest is None else min(oldest, first)
            found[store] = (n, oldest)
        now = datetime.now(UTC)
        out: dict[str, tuple[int, float]] = {}
        for store, (n, oldest) in found.items():
            lag = (now - oldest).total_seconds() if oldest is not None else 0.0
            metrics.OUTBOX_DEPTH.labels(store).set(n)
            metrics.OUTBOX_LAG.labels(store).set(max(lag, 0.0))
            out[store] = (n, lag)
        return out

    async def _maybe_prune(self, tenants: list[Tenant]) -> None:
        if time.monotonic() - self._last_prune < 60:
            return
        self._last_prune = time.monotonic()
        for t in tenants:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                async with tenant_unit_of_work(self.db, t) as uow:
                    await uow.execute(q.PRUNE_DELIVERED, self.settings.retention_s)
