"""The one path to the outbox: rows built when a message is published on a unit of work,
written at its commit (kernel/db/commit).

``uow.publish(event)``, ``uow.publish_many(events)`` and the dispatcher (``publish``, a bus
``send``) all end here: the payload, the headers (tenant, correlation and causation ids, the
trace context of the moment of publishing) and the message id are made at once, the rows go
to the outbox in one statement just before COMMIT, in the store ``tenant_store`` names
(the tenant's own, or its schema from a platform unit of work, or its database in a
transaction of its own).

After the COMMIT the unit of work calls ``committed``: ``OutboxWake`` wakes this process's
relay at once (a callback, no SQL) and the relays of other processes by NOTIFY, coalesced:
one ``pg_notify`` per database for every tenant that committed rows during the last
``notify_interval_s``, sent on a pooled connection of its own (never inside a writer's
transaction: NOTIFY takes a queue lock at COMMIT that serializes every committer). Written
here rather than taken from a library: it is twenty lines over asyncio and asyncpg.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson

from tenantry.kernel.db.commit import Part, PendingMessage, joins, tenant_store
from tenantry.kernel.db.uow import quote_ident
from tenantry.kernel.messaging import sql as q
from tenantry.kernel.messaging.envelope import child_headers, encode, fast_uuid4, name_of
from tenantry.kernel.observability import tracing

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.db.uow import UnitOfWork
    from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)

#: The relays' wake-up channel; the payload is the tenant id.
CHANNEL = "tenantry_outbox"


@cache
def insert_sql(schema: str | None) -> str:
    """The INSERT for a store named by schema (None: the unit of work's own search_path)."""
    return q.OUTBOX_ROWS_PART.format(schema=quote_ident(schema) + "." if schema else "")


def _args(tenant_id: Any, rows: Sequence[PendingMessage]) -> tuple[Any, ...]:
    return (
        tenant_id,
        [r.message_id for r in rows],
        [r.name for r in rows],
        [r.kind for r in rows],
        [r.target for r in rows],
        [r.payload for r in rows],
        [r.headers for r in rows],
    )


class OutboxWake:
    """Wakes the relays after a commit wrote outbox rows (see the module docstring)."""

    def __init__(self, db: Database, interval_s: float) -> None:
        self.db = db
        self.interval_s = interval_s
        #: This process's relays: called with the tenant id at once.
        self.local: list[Callable[[UUID], None]] = []
        self._pending: dict[tuple[str, str | None], set[str]] = {}
        self._flushing: dict[tuple[str, str | None], asyncio.Task[None]] = {}

    def committed(self, tenant: Tenant) -> None:
        for wake in list(self.local):
            try:
                wake(tenant.id)
            except Exception:  # a relay's callback never fails a request
                _log.exception("outbox wake-up callback failed")
        key = (tenant.server, tenant.database)
        self._pending.setdefault(key, set()).add(str(tenant.id))
        if key not in self._flushing:
            try:
                task = asyncio.get_running_loop().create_task(self._flush(key))
            except RuntimeError:  # no loop (never in a unit of work): the relays poll
                return
            self._flushing[key] = task

    async def _flush(self, key: tuple[str, str | None]) -> None:
        try:
            while payloads := self._pending.pop(key, None):
                try:
                    pool = await self.db.pool(*key)
                    async with pool.acquire() as conn:
                        await conn.execute(q.NOTIFY_OUTBOX, CHANNEL, sorted(payloads))
                except Exception as exc:  # the relays poll: a lost wake-up only delays
                    _log.debug("outbox NOTIFY on %s failed: %s", key, exc)
                await asyncio.sleep(self.interval_s)
        finally:
            self._flushing.pop(key, None)

    async def close(self) -> None:
        """Stop sending (shutdown); what was pending is found by the relays' next poll."""
        for task in list(self._flushing.values()):
            task.cancel()
        self._flushing.clear()


class Outbox:
    """The kernel's ``OutboxSink`` (registered on the Database when messaging is built)."""

    def __init__(self, wake: OutboxWake) -> None:
        self.wake = wake

    def message(
        self, uow: UnitOfWork, message: Any, kind: str, target: str | None
    ) -> PendingMessage:
        name = name_of(message)
        message_id = fast_uuid4()
        with tracing.span(f"publish {name}", tracing.SpanKind.PRODUCER, message_id=str(message_id)):
            headers = child_headers(uow.tenant_id)  # the producer span is the consumer's parent
        return PendingMessage(
            message_id,
            name,
            kind,
            target,
            orjson.dumps(encode(message)).decode(),
            orjson.dumps(headers.as_dict()).decode(),
        )

    def events(self, uow: UnitOfWork, events: Sequence[Any]) -> list[PendingMessage]:
        """Many events under one producer span (a batch of postings is one publish)."""
        tenant_id = uow.tenant_id
        with tracing.span("publish", tracing.SpanKind.PRODUCER, messages=len(events)):
            return [
                PendingMessage(
                    fast_uuid4(),
                    name_of(e),
                    "event",
                    None,
                    orjson.dumps(encode(e)).decode(),
                    orjson.dumps(child_headers(tenant_id).as_dict()).decode(),
                )
                for e in events
            ]

    def part(self, uow: UnitOfWork, rows: Sequence[PendingMessage]) -> Part | None:
        schema = joins(uow)
        if schema is None:
            return None
        sql = insert_sql(schema if uow.platform else None)
        return Part(sql, _args(uow.tenant_id, rows))

    async def write(self, uow: UnitOfWork, rows: Sequence[PendingMessage]) -> None:
        async with tenant_store(uow, f"{len(rows)} outbox messages") as store:
            await store.uow.execute(
                insert_sql(store.schema if store.qualified else None),
                *_args(store.uow.tenant_id, rows),
            )

    def committed(self, tenant: Tenant) -> None:
        self.wake.committed(tenant)
