"""The Dispatcher: ``send(command)`` and ``publish(uow, event)``; callers never know the
transport.

- ``publish(uow, event)`` writes the event to the outbox of the unit of work's tenant store,
  in the same transaction (a rollback publishes nothing). The relay delivers it: handlers on
  ``inproc`` edges are called in the relay's process, ``bus`` edges go through RabbitMQ.
- ``send(command)`` has exactly one handler. On an ``inproc`` edge it runs at once (in the
  caller's unit of work when one is given) and returns the handler's result; on a ``bus`` edge
  it is written to the outbox for the handler's module and returns ``None``.

Handlers are ``async def handler(uow, message, ctx)``: a unit of work in the sender's tenant
context (RLS applies), the decoded message, and a ``MessageContext`` (ids, headers). Every
delivered message is recorded in the consumer's inbox in the handler's transaction, so a
redelivery has no second effect.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tenantry.kernel.messaging import queries as q
from tenantry.kernel.messaging.config import MessagingSettings
from tenantry.kernel.messaging.envelope import (
    Envelope,
    Headers,
    MessageContext,
    child_headers,
    current_message,
    decode,
    encode,
    fast_uuid4,
    name_of,
    owner_of,
    wire_roundtrip,
)
from tenantry.kernel.messaging.routing import Routes, Transport

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.db.uow import UnitOfWork

Handler = Callable[["UnitOfWork", Any, MessageContext], Awaitable[Any]]


class MessagingError(Exception):
    """A message cannot be sent or handled as asked (no handler, two handlers...)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    consumer: str
    message_type: type[Any]
    handler: Handler


class Dispatcher:
    def __init__(self, db: Database, settings: MessagingSettings, routes: Routes | None = None):
        self.db = db
        self.settings = settings
        self.routes = routes or Routes()
        self.types: dict[str, type[Any]] = {}
        self.subscribers: dict[str, list[Subscription]] = {}
        self.commands: dict[str, Subscription] = {}

    # -- registration (module setup) --------------------------------------------------------
    def _register_type(self, message_type: type[Any]) -> str:
        name = name_of(message_type)
        known = self.types.setdefault(name, message_type)
        if known is not message_type:
            raise MessagingError(f"two message types are named {name!r}")
        return name

    def subscribe(self, consumer: str, event_type: type[Any], handler: Handler) -> None:
        """``consumer`` (a module name) handles ``event_type``; zero or more per event."""
        name = self._register_type(event_type)
        subs = self.subscribers.setdefault(name, [])
        if any(s.consumer == consumer for s in subs):
            raise MessagingError(f"{consumer!r} subscribes to {name!r} twice")
        subs.append(Subscription(consumer, event_type, handler))

    def handle(self, module: str, command_type: type[Any], handler: Handler) -> None:
        """``module`` handles ``command_type``; exactly one handler per command."""
        name = self._register_type(command_type)
        if name in self.commands:
            raise MessagingError(f"{name!r} already has a handler")
        self.commands[name] = Subscription(module, command_type, handler)

    def has_handler(self, command_type: type[Any]) -> bool:
        return name_of(command_type) in self.commands

    def transport(self, name: str, consumer: str) -> Transport:
        return self.routes.transport(owner_of(name), consumer)

    def subscription(self, name: str, consumer: str) -> Subscription | None:
        if (cmd := self.commands.get(name)) is not None and cmd.consumer == consumer:
            return cmd
        for s in self.subscribers.get(name, ()):
            if s.consumer == consumer:
                return s
        return None

    # -- publishing -------------------------------------------------------------------------
    async def publish(self, uow: UnitOfWork, event: Any) -> uuid.UUID:
        """Write ``event`` to the outbox in ``uow``'s transaction; returns its message id."""
        name = name_of(event)
        return await self._to_outbox(uow, name, "event", None, encode(event))

    async def publish_many(self, uow: UnitOfWork, events: Sequence[Any]) -> list[uuid.UUID]:
        """``publish`` for many events in one statement (one multi-row INSERT, in order, one
        wake-up): a batch of postings costs one round trip, not one per event. Returns the
        message ids in the order of ``events``."""
        if not events:
            return []
        ids = [fast_uuid4() for _ in events]
        await uow.execute(
            q.INSERT_OUTBOX_EVENTS,
            uow.tenant_id,
            ids,
            [name_of(e) for e in events],
            [orjson.dumps(encode(e)).decode() for e in events],
            [orjson.dumps(child_headers(uow.tenant_id).as_dict()).decode() for _ in events],
        )
        return ids

    async def _to_outbox(
        self, uow: UnitOfWork, name: str, kind: str, target: str | None, payload: dict[str, Any]
    ) -> uuid.UUID:
        message_id = fast_uuid4()
        headers = child_headers(uow.tenant_id)
        await uow.execute(
            q.INSERT_OUTBOX,
            uow.tenant_id,
            message_id,
            name,
            kind,
            target,
            payload,
            headers.as_dict(),
        )
        return message_id

    async def send(self, command: Any, uow: UnitOfWork | None = None) -> Any:
        """Run the command's one handler (inproc: its result) or queue it (bus: None)."""
        name = name_of(command)
        sub = self.commands.get(name)
        if sub is None:
            raise MessagingError(f"no handler for command {name!r}")
        transport = self.transport(name, sub.consumer)
        async with self._uow(uow) as u:
            if transport is Transport.BUS:
                await self._to_outbox(u, name, "command", sub.consumer, encode(command))
                return None
            msg = (
                wire_roundtrip(sub.message_type, command)
                if self.settings.serialize_inproc
                else (command)
            )
            ctx = MessageContext(uuid.uuid4(), name, child_headers(u.tenant_id), sub.consumer)
            token = current_message.set(ctx)
            try:
                return await sub.handler(u, msg, ctx)
            finally:
                current_message.reset(token)

    @contextlib.asynccontextmanager
    async def _uow(self, uow: UnitOfWork | None) -> AsyncIterator[UnitOfWork]:
        if uow is not None:
            yield uow
        else:
            async with self.db.unit_of_work() as own:
                yield own

    # -- delivery (relay and bus consumers) -------------------------------------------------
    async def deliver(self, uow: UnitOfWork, env: Envelope, consumer: str) -> bool:
        """Handle ``env`` as ``consumer`` in ``uow`` (the sender's tenant), recording it in the
        consumer's inbox in the same transaction. False: already processed (no effect)."""
        sub = self.subscription(env.name, consumer)
        if sub is None:
            raise MessagingError(f"{consumer!r} does not handle {env.name!r}")
        status = await uow.execute(q.INBOX_CLAIM, uow.tenant_id, consumer, env.message_id)
        if status.endswith(" 0"):
            return False
        ctx = MessageContext(env.message_id, env.name, env.headers, consumer)
        token = current_message.set(ctx)
        try:
            await sub.handler(uow, decode(sub.message_type, env.payload), ctx)
        finally:
            current_message.reset(token)
        return True

    async def deliver_batch(self, uow: UnitOfWork, envs: list[Envelope], consumer: str) -> int:
        """``deliver`` for a batch in one transaction: the inbox rows in one statement, then
        the handlers of the new messages. Any error fails the whole batch (the relay then
        retries message by message)."""
        ids = [e.message_id for e in envs]
        rows = await uow.fetch(q.INBOX_CLAIM_MANY, uow.tenant_id, consumer, ids)
        new = {r["message_id"] for r in rows}
        for env in envs:
            if env.message_id not in new:
                continue
            sub = self.subscription(env.name, consumer)
            if sub is None:
                raise MessagingError(f"{consumer!r} does not handle {env.name!r}")
            ctx = MessageContext(env.message_id, env.name, env.headers, consumer)
            token = current_message.set(ctx)
            try:
                await sub.handler(uow, decode(sub.message_type, env.payload), ctx)
            finally:
                current_message.reset(token)
        return len(new)

    def local_consumers(self, env: Envelope) -> list[str]:
        """Consumers of ``env`` reached in-process."""
        return [c for c in self._consumers(env) if self.transport(env.name, c) is Transport.INPROC]

    def bus_consumers(self, env: Envelope) -> list[str]:
        return [c for c in self._consumers(env) if self.transport(env.name, c) is Transport.BUS]

    def _consumers(self, env: Envelope) -> list[str]:
        if env.target is not None:
            return [env.target] if self.subscription(env.name, env.target) else []
        if env.kind == "command":
            sub = self.commands.get(env.name)
            return [sub.consumer] if sub else []
        return [s.consumer for s in self.subscribers.get(env.name, ())]

    def bus_bindings(self) -> dict[str, list[str]]:
        """consumer -> message names it receives over the bus."""
        out: dict[str, list[str]] = {}
        for name, subs in self.subscribers.items():
            for s in subs:
                if self.transport(name, s.consumer) is Transport.BUS:
                    out.setdefault(s.consumer, []).append(name)
        for name, sub in self.commands.items():
            if self.transport(name, sub.consumer) is Transport.BUS:
                out.setdefault(sub.consumer, []).append(name)
        return out


def envelope_from_row(row: Any) -> Envelope:
    return Envelope(
        message_id=row["message_id"],
        name=row["name"],
        kind=row["kind"],
        payload=row["payload"],
        headers=Headers.from_dict(row["headers"]),
        target=row["target"],
        attempts=row["attempts"],
    )
