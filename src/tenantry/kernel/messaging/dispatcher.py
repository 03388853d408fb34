"""The Dispatcher: ``send(command)`` and ``publish(uow, event)``; callers never know the
transport.

- ``publish(uow, event)`` is ``uow.publish(event)``: the event is collected on the unit of
  work and written to the outbox of its tenant's store at its commit, in the same transaction
  (a rollback publishes nothing; kernel/messaging/outbox is the one path to the outbox). The
  relay delivers it: handlers on ``inproc`` edges are called in the relay's process, ``bus``
  edges go through RabbitMQ.
- ``send(command)`` has exactly one handler. On an ``inproc`` edge it runs at once (in the
  caller's unit of work when one is given); on a ``bus`` edge it is written to the outbox for
  the handler's module (in the caller's unit of work: a rollback sends nothing).

  **Results.** A command returns a result to its sender only if its handler was registered
  with ``replies=True``; ``send`` then returns the handler's result, and such a command must
  stay in-process: an edge configured ``bus`` for it is a start-up error (``check_routes``),
  because a queued command cannot answer. Every other command's ``send`` returns ``None`` on
  both transports (whatever the handler returns is dropped), so moving an edge to the bus
  never changes what a caller gets.

Handlers are ``async def handler(uow, message, ctx)``: a unit of work in the sender's tenant
context (RLS applies), the decoded message, and a ``MessageContext`` (ids, headers). Every
delivered message is recorded in the consumer's inbox in the handler's transaction, so a
redelivery has no second effect.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenantry.kernel.errors import ConfigError
from tenantry.kernel.hooks import ErrorHook, call_hooks
from tenantry.kernel.messaging import sql as q
from tenantry.kernel.messaging.config import MessagingSettings
from tenantry.kernel.messaging.envelope import (
    Envelope,
    Headers,
    MessageContext,
    current_message,
    decode,
    name_of,
    owner_of,
    roundtrip_for,
    trace_id_of,
)
from tenantry.kernel.messaging.outbox import Outbox, OutboxWake
from tenantry.kernel.messaging.routing import Routes, Transport
from tenantry.kernel.observability import metrics, tracing

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.db.uow import UnitOfWork

_log = logging.getLogger(__name__)
Handler = Callable[["UnitOfWork", Any, MessageContext], Awaitable[Any]]


class MessagingError(Exception):
    """A message cannot be sent or handled as asked (no handler, two handlers...)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    consumer: str
    message_type: type[Any]
    handler: Handler
    #: Commands only: the handler's result is returned to the sender (in-process only).
    replies: bool = False
    #: The message's name and owner module (cached: ``send`` is on hot paths).
    name: str = ""
    owner: str = ""


class Dispatcher:
    def __init__(self, db: Database, settings: MessagingSettings, routes: Routes | None = None):
        self.db = db
        # The kernel's one path to the outbox: what units of work publish, at their commit.
        self.outbox = Outbox(OutboxWake(db, settings.notify_interval_s))
        db.commit_writers.outbox = self.outbox
        self.settings = settings
        self.routes = routes or Routes()
        self.types: dict[str, type[Any]] = {}
        self.subscribers: dict[str, list[Subscription]] = {}
        self.commands: dict[str, Subscription] = {}
        self._by_type: dict[type[Any], Subscription] = {}
        #: Called (never raising) with ``(exc, context)`` for every failed delivery of a
        #: message to a consumer (the relay's and the bus consumer's): error tracking.
        self.error_hooks: list[ErrorHook] = []

    def report_failure(self, exc: BaseException, env: Envelope, consumer: str) -> None:
        """A consumer failed on ``env`` (its transaction rolled back; the message will be
        retried or dead-lettered): count it and hand it to the error hooks."""
        metrics.CONSUMER_ERRORS.labels(consumer).inc()
        context: dict[str, Any] = {
            "consumer": consumer,
            "message": env.name,
            "message_id": str(env.message_id),
            "attempt": env.attempts + 1,
        }
        if env.headers.tenant_id is not None:
            context["tenant_id"] = str(env.headers.tenant_id)
        trace_id = trace_id_of(env.headers.traceparent)
        if trace_id:
            context["trace_id"] = trace_id
        call_hooks(self.error_hooks, exc, context, what="consumer error")

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
        subs.append(Subscription(consumer, event_type, handler, False, name, owner_of(name)))

    def handle(
        self, module: str, command_type: type[Any], handler: Handler, *, replies: bool = False
    ) -> None:
        """``module`` handles ``command_type``; exactly one handler per command. With
        ``replies``, ``send`` returns the handler's result (the command must then stay
        in-process: see ``check_routes``); without, ``send`` returns None."""
        name = self._register_type(command_type)
        if name in self.commands:
            raise MessagingError(f"{name!r} already has a handler")
        sub = Subscription(module, command_type, handler, replies, name, owner_of(name))
        self.commands[name] = sub
        self._by_type[command_type] = sub
        self.check_routes()

    def unhandle(self, command_type: type[Any]) -> None:
        """Remove a command's handler (tests, stand-ins)."""
        sub = self.commands.pop(name_of(command_type), None)
        if sub is not None:
            self._by_type.pop(sub.message_type, None)

    def check_routes(self, routes: Routes | None = None) -> None:
        """A command whose sender gets a result cannot cross the bus: refuse such an edge with
        a ConfigError naming the command and the edge (at start-up, and whenever routes or
        handlers change)."""
        routes = routes or self.routes
        bad = [
            f"dispatch.'{sub.owner} -> {sub.consumer}' = 'bus': command {name!r} returns a "
            "result to its sender (registered with replies=True), which a queued command "
            "cannot do; keep this edge 'inproc'"
            for name, sub in self.commands.items()
            if sub.replies and routes.transport(sub.owner, sub.consumer) is Transport.BUS
        ]
        if bad:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(bad))

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
    # Thin calls onto the unit of work: messages are collected on it and written to the
    # outbox at its commit (kernel/messaging/outbox, kernel/db/commit).
    async def publish(self, uow: UnitOfWork, event: Any) -> uuid.UUID:
        """``uow.publish(event)``: collected, written to the outbox at ``uow``'s commit in its
        transaction; returns the message id."""
        return self._checked(uow, event).publish(event)

    async def publish_many(self, uow: UnitOfWork, events: Sequence[Any]) -> list[uuid.UUID]:
        """``uow.publish_many(events)``: one outbox statement at commit, in order; returns
        the message ids in the order of ``events``."""
        if not events:
            return []
        return self._checked(uow, events[0]).publish_many(events)

    @staticmethod
    def _checked(uow: UnitOfWork, message: Any) -> UnitOfWork:
        if uow.tenant is None:
            raise MessagingError(
                f"{name_of(message)!r}: messages belong to a tenant (platform unit of work)"
            )
        return uow

    async def send(self, command: Any, uow: UnitOfWork | None = None) -> Any:
        """Run the command's one handler in-process, or queue it for the bus (see the module
        docstring for what is returned). The message goes through the same JSON round trip
        as on the wire unless ``serialize_inproc`` is off."""
        sub = self._by_type.get(type(command))
        if sub is None:
            name = name_of(command)
            sub = self.commands.get(name)
            if sub is None:
                raise MessagingError(f"no handler for command {name!r}")
        if self.routes.edges.get((sub.owner, sub.consumer)) is Transport.BUS:
            if sub.replies:  # routes changed after start-up without check_routes
                self.check_routes()
            if uow is not None:
                self._checked(uow, command).collect_message(command, "command", sub.consumer)
            else:
                async with self.db.unit_of_work() as own:
                    self._checked(own, command).collect_message(command, "command", sub.consumer)
            return None
        if uow is None:
            async with self.db.unit_of_work() as own:
                return await self._send_local(sub, command, own)
        return await self._send_local(sub, command, uow)

    async def _send_local(self, sub: Subscription, command: Any, uow: UnitOfWork) -> Any:
        if self.settings.serialize_inproc:
            command = roundtrip_for(sub.message_type)(command)
        tenant = uow.tenant
        ctx = MessageContext.local(sub.name, sub.consumer, tenant.id if tenant else None)
        token = current_message.set(ctx)
        try:
            result = await sub.handler(uow, command, ctx)
        finally:
            current_message.reset(token)
        return result if sub.replies else None

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
        await self._handle(uow, sub, env)
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
            await self._handle(uow, sub, env)
        return len(new)

    @staticmethod
    async def _handle(uow: UnitOfWork, sub: Subscription, env: Envelope) -> None:
        """Run ``sub``'s handler on ``env`` as the message being handled, in the message's
        trace (a consumer span when spans are recorded; its ids in log lines either way)."""
        ctx = MessageContext(env.message_id, env.name, env.headers, sub.consumer)
        attributes = (
            {"consumer": sub.consumer, "message_id": str(env.message_id)}
            if tracing.recording()
            else {}  # ids only: nothing would read them
        )
        with tracing.continue_trace(
            {"traceparent": env.headers.traceparent},
            f"consume {env.name}",
            tracing.SpanKind.CONSUMER,
            **attributes,
        ):
            token = current_message.set(ctx)
            try:
                await sub.handler(uow, decode(sub.message_type, env.payload), ctx)
            finally:
                current_message.reset(token)

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
