"""RabbitMQ transport (aio-pika): a durable topic exchange per owner module, a durable quorum
queue per consumer module, publisher confirms, robust reconnects.

Names: exchange ``<prefix>.<owner>`` (routing key = message name), queue
``<prefix>.<consumer>`` bound to the names that reach it over the bus. Messages aimed at one
consumer (bus commands, replayed dead letters) go straight to its queue. The publisher also
declares the queues it publishes to, so nothing is dropped before the worker first starts.

Effects stay exactly-once across broker restarts and dropped connections: the relay marks a
row delivered only after the broker's confirm (otherwise it retries later), and a consumer
acks only after its transaction (effect + inbox row) committed; a redelivery finds its inbox
row and has no effect. A handler that keeps failing is retried ``consumer_attempts`` times
with backoff, then the message goes to the tenant's dead-letter table (``tenantry messages
dead``) for that one consumer, and is acked.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any
from uuid import UUID

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from tenantry.kernel.messaging import queries as q
from tenantry.kernel.messaging.config import MessagingSettings
from tenantry.kernel.messaging.dispatcher import Dispatcher
from tenantry.kernel.messaging.envelope import Envelope, Headers, owner_of
from tenantry.kernel.messaging.relay import backoff
from tenantry.kernel.tenancy.context import tenant_scope

if TYPE_CHECKING:
    from tenantry.kernel.tenancy.catalog import TenantCatalog

_log = logging.getLogger(__name__)
QUEUE_ARGS: dict[str, Any] = {"x-queue-type": "quorum"}


class RabbitBus:
    def __init__(
        self,
        settings: MessagingSettings,
        dispatcher: Dispatcher,
        catalog: TenantCatalog | None = None,
        role: str = "relay",
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.catalog = catalog
        self.prefix = settings.amqp_prefix
        self.connection_name = f"{self.prefix}-{role}-{os.getpid()}"
        self._conn: AbstractRobustConnection | None = None
        self._pub: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._declared: set[str] = set()
        self._lock = asyncio.Lock()
        self.handled = 0

    def exchange_name(self, owner: str) -> str:
        return f"{self.prefix}.{owner}"

    def queue_name(self, consumer: str) -> str:
        return f"{self.prefix}.{consumer}"

    async def connect(self) -> None:
        if self._conn is not None:
            return
        self._conn = await aio_pika.connect_robust(
            self.settings.amqp_url,
            client_properties={"connection_name": self.connection_name},
            reconnect_interval=0.5,
        )
        self._pub = await self._conn.channel(publisher_confirms=True, on_return_raises=True)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._exchanges.clear()
            self._declared.clear()
            await conn.close()

    async def _exchange(self, channel: AbstractChannel, owner: str) -> AbstractExchange:
        ex = self._exchanges.get(owner)
        if ex is None:
            ex = await channel.declare_exchange(
                self.exchange_name(owner), aio_pika.ExchangeType.TOPIC, durable=True
            )
            self._exchanges[owner] = ex
        return ex

    async def _declare_queue(self, channel: AbstractChannel, consumer: str) -> AbstractQueue:
        queue = await channel.declare_queue(
            self.queue_name(consumer), durable=True, arguments=QUEUE_ARGS
        )
        for name in self.dispatcher.bus_bindings().get(consumer, []):
            await queue.bind(await self._exchange(channel, owner_of(name)), routing_key=name)
        return queue

    # -- publishing (the relay) -------------------------------------------------------------
    async def publish(self, env: Envelope, consumers: list[str]) -> None:
        await self.connect()
        channel = self._pub
        assert channel is not None
        async with self._lock:
            for c in consumers:
                if c not in self._declared:
                    await self._declare_queue(channel, c)
                    self._declared.add(c)
        message = aio_pika.Message(
            env.body(),
            message_id=str(env.message_id),
            correlation_id=env.headers.correlation_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=env.name,
            headers={
                **env.headers.as_dict(),
                "x-kind": env.kind,
                "x-target": env.target or "",
            },
        )
        if env.target is not None:
            await channel.default_exchange.publish(
                message, routing_key=self.queue_name(env.target), mandatory=True
            )
        else:
            ex = await self._exchange(channel, owner_of(env.name))
            await ex.publish(message, routing_key=env.name, mandatory=True)

    # -- consuming (the worker) -------------------------------------------------------------
    async def consume(self, consumers: list[str] | None = None) -> list[str]:
        """Start consuming for ``consumers`` (default: every consumer with a bus edge)."""
        await self.connect()
        assert self._conn is not None
        bindings = self.dispatcher.bus_bindings()
        wanted = [c for c in (consumers or list(bindings)) if c in bindings]
        for consumer in wanted:
            channel = await self._conn.channel()
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            queue = await self._declare_queue(channel, consumer)

            async def on_message(msg: AbstractIncomingMessage, consumer: str = consumer) -> None:
                await self._handle(consumer, msg)

            await queue.consume(on_message)
        return wanted

    async def _handle(self, consumer: str, msg: AbstractIncomingMessage) -> None:
        assert self.catalog is not None, "a consuming RabbitBus needs the tenant catalog"
        raw: dict[str, Any] = {k: v for k, v in (msg.headers or {}).items()}
        headers = Headers.from_dict(
            {k: (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
        )
        target = raw.get("x-target") or None
        env = Envelope(
            message_id=UUID(str(msg.message_id)),
            name=str(msg.type),
            kind=str(raw.get("x-kind") or "event"),
            payload=orjson.loads(msg.body),
            headers=headers,
            target=str(target) if target else None,
        )
        tenant = await self.catalog.get(headers.tenant_id) if headers.tenant_id else None
        if tenant is None:
            _log.error("message %s names no known tenant; dropped", env.message_id)
            await msg.reject(requeue=False)
            return
        db = self.dispatcher.db
        error = ""
        for attempt in range(self.settings.consumer_attempts):
            try:
                with tenant_scope(tenant):
                    async with db.tenant_unit_of_work(tenant) as uow:
                        await self.dispatcher.deliver(uow, env, consumer)
                await msg.ack()
                self.handled += 1
                return
            except (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError) as exc:
                _log.warning("consumer %s: database unavailable (%s); requeued", consumer, exc)
                await asyncio.sleep(1)
                await msg.nack(requeue=True)
                return
            except Exception as exc:
                error = f"{consumer}: {type(exc).__name__}: {exc}"
                _log.warning(
                    "consumer %s failed on %s (attempt %d): %s",
                    consumer,
                    env.name,
                    attempt + 1,
                    error,
                )
                await asyncio.sleep(
                    backoff(attempt, self.settings.backoff_base_s, self.settings.backoff_max_s)
                )
        try:
            async with db.tenant_unit_of_work(tenant) as uow:
                await uow.execute(
                    q.INSERT_DEAD,
                    tenant.id,
                    env.message_id,
                    env.name,
                    env.kind,
                    consumer,
                    env.payload,
                    headers.as_dict(),
                    self.settings.consumer_attempts,
                    error,
                )
        except Exception:
            _log.exception("consumer %s: cannot dead-letter %s; requeued", consumer, env.message_id)
            await msg.nack(requeue=True)
            return
        await msg.ack()
