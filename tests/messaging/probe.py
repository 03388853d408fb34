"""Probe messages and handlers for the messaging tests (owner ``probe``, consumer ``sink``).

Effects go to ``public.msg_probe_effects`` with the tenant the handler's transaction runs as
(``app.tenant_id``), so tests see exactly-once effects and the tenant context at once.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tenantry.kernel.db.privileged import tenant_unit_of_work
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.messaging.dispatcher import Dispatcher
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry.kernel.observability import tracing
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import Tenant

EFFECTS_DDL = """
CREATE TABLE IF NOT EXISTS public.msg_probe_effects (
    tenant_id   uuid NOT NULL,
    tenant_seen uuid,
    consumer    text NOT NULL,
    message_id  uuid NOT NULL,
    key         text NOT NULL,
    n           integer NOT NULL,
    correlation_id text,
    causation_id text,
    traceparent text
);
ALTER TABLE public.msg_probe_effects ADD COLUMN IF NOT EXISTS trace_seen text
"""
INSERT_EFFECT = """
INSERT INTO public.msg_probe_effects (tenant_id, tenant_seen, consumer, message_id, key, n,
                                      correlation_id, causation_id, traceparent, trace_seen)
VALUES ($1, nullif(current_setting('app.tenant_id', true), '')::uuid, $2, $3, $4, $5, $6, $7, $8,
        $9)
"""


class Bumped(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "probe.Bumped.v1"
    key: str
    n: int = 1
    chain: bool = False


class Echoed(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "probe.Echoed.v1"
    key: str


class Poison(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "probe.Poison.v1"
    key: str


class Add(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "probe.Add.v1"
    key: str
    a: int
    b: int


class Sum(BaseModel):
    """A command whose sender needs the result (registered with ``replies=True``)."""

    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "probe.Sum.v1"
    a: int
    b: int


def register(dispatcher: Dispatcher) -> None:
    async def effect(uow: UnitOfWork, ctx: MessageContext, key: str, n: int) -> None:
        h = ctx.headers
        ids = tracing.current_ids()  # the trace the handler runs in (its log lines carry it)
        await uow.execute(
            INSERT_EFFECT,
            uow.tenant_id,
            ctx.consumer,
            ctx.message_id,
            key,
            n,
            h.correlation_id,
            h.causation_id,
            h.traceparent,
            ids and ids[0],
        )

    async def on_bumped(uow: UnitOfWork, ev: Bumped, ctx: MessageContext) -> None:
        await effect(uow, ctx, ev.key, ev.n)
        if ev.chain:
            await dispatcher.publish(uow, Echoed(key=ev.key + ":echo"))

    async def on_echoed(uow: UnitOfWork, ev: Echoed, ctx: MessageContext) -> None:
        await effect(uow, ctx, ev.key, 1)

    async def on_poison(uow: UnitOfWork, ev: Poison, ctx: MessageContext) -> None:
        raise RuntimeError(f"poison {ev.key}")

    async def on_add(uow: UnitOfWork, cmd: Add, ctx: MessageContext) -> Any:
        await effect(uow, ctx, cmd.key, cmd.a + cmd.b)
        return cmd.a + cmd.b

    dispatcher.subscribe("sink", Bumped, on_bumped)
    dispatcher.subscribe("sink", Echoed, on_echoed)
    dispatcher.subscribe("sink", Poison, on_poison)
    dispatcher.subscribe("audit", Bumped, on_bumped)

    async def on_sum(uow: UnitOfWork, cmd: Sum, ctx: MessageContext) -> int:
        return cmd.a + cmd.b

    dispatcher.handle("sink", Add, on_add)
    dispatcher.handle("sink", Sum, on_sum, replies=True)


async def outbox_ids(platform: Platform, tenant: Tenant, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` are in the outbox of ``tenant``'s store."""
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        rows = await uow.fetch(
            "SELECT message_id FROM outbox WHERE message_id = ANY($1::uuid[])", ids
        )
    return {r["message_id"] for r in rows}
