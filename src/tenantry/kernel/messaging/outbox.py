"""The one path to the outbox: rows built when a message is published on a unit of work,
written at its commit (kernel/db/commit).

``uow.publish(event)``, ``uow.publish_many(events)`` and the dispatcher (``publish``, a bus
``send``) all end here: the payload, the headers (tenant, correlation and causation ids, the
trace context of the moment of publishing) and the message id are made at once, the rows go
to the outbox in one statement just before COMMIT, in the store ``tenant_store`` names
(the tenant's own, or its schema from a platform unit of work, or its database in a
transaction of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from tenantry.kernel.db.commit import Part, PendingMessage, joins, tenant_store
from tenantry.kernel.db.uow import quote_ident
from tenantry.kernel.messaging import sql as q
from tenantry.kernel.messaging.envelope import child_headers, encode, fast_uuid4, name_of
from tenantry.kernel.observability import tracing

if TYPE_CHECKING:
    from tenantry.kernel.db.uow import UnitOfWork


@cache
def insert_sql(schema: str | None, template: str = q.INSERT_OUTBOX_ROWS) -> str:
    """The INSERT for a store named by schema (None: the unit of work's own search_path)."""
    return template.format(schema=quote_ident(schema) + "." if schema else "")


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


class Outbox:
    """The kernel's ``OutboxSink`` (registered on the Database when messaging is built)."""

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
        sql = insert_sql(schema if uow.platform else None, q.OUTBOX_ROWS_PART)
        return Part(sql, _args(uow.tenant_id, rows), q.OUTBOX_WAKE)

    async def write(self, uow: UnitOfWork, rows: Sequence[PendingMessage]) -> None:
        async with tenant_store(uow, f"{len(rows)} outbox messages") as store:
            await store.uow.execute(
                insert_sql(store.schema if store.qualified else None),
                *_args(store.uow.tenant_id, rows),
            )
