"""RabbitMQ transport (aio-pika): a durable topic exchange per owner module, a durable quorum
queue per consumer module, publisher confirms, reconnects after a broker restart.

Names: exchange ``<prefix>.<owner>`` (routing key = message name), queue
``<prefix>.<consumer>`` bound to the names that reach it over the bus. Messages aimed at one
consumer (bus commands, replayed dead letters) go straight to its queue. The publisher also
declares the queues it publishes to, so nothing is dropped before the worker first starts.

Effects stay exactly-once across broker restarts and dropped connections: the relay marks a
row delivered only after the broker's confirm (otherwise it retries later), and a consumer
acks only after its transaction (effect + inbox row) committed; a redelivery finds its inbox
row and has no effect.

**Reconnects are ours, not the client library's.** Connections are plain, not aio-pika's
"robust" ones: the broker-drop test used to stall now and then with messages left in the
queue and no consumer taking them, after a forced close, and the library's automatic
restore of channels, queues, bindings and consumers (with exchange objects shared between
channels, as this module did) was the one part we could neither observe nor test. A restart
we do ourselves is observable (``connections``) and testable. The publisher drops a closed
connection and opens a new one on the next publish (the relay retries a failed publish
without counting an attempt). The consumer runs a supervisor: it sets up every queue and
consumer on a fresh connection, waits until that connection or any of its channels closes,
then starts over (every 0.5 s while the broker is away). An ack that fails because its
channel died is not a handler failure: the broker redelivers the message on the new
connection and the inbox makes that a no-op.

A handler that keeps failing is retried ``consumer_attempts`` times with backoff, then the
message goes to the tenant's dead-letter table (``tenantry messages dead``) for that one
consumer, and is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)

from tenantry.kernel.db.privileged import tenant_unit_of_work
from tenantry.kernel.messaging import sql as q
from tenantry.kernel.messaging.config import MessagingSettings
from tenantry.kernel.messaging.dispatcher import Dispatcher
from tenantry.kernel.messaging.envelope import Envelope, Headers, owner_of
from tenantry.kernel.messaging.relay import backoff
from tenantry.kernel.tenancy.context import tenant_scope

if TYPE_CHECKING:
    from tenantry.kernel.tenancy.catalog import TenantCatalog

_log = logging.getLogger(__name__)
QUEUE_ARGS: dict[str, Any] = {"x-queue-type": "quorum"}
#: Pause between the consumer's reconnection attempts while the broker is away.
RECONNECT_S = 0.5


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
        self._conn: AbstractConnection | None = None
        self._pub: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._declared: set[str] = set()
        self._lock = asyncio.Lock()
        self._consumer_conn: AbstractConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.handled = 0
        #: Consumer (re)connections made by the supervisor, the first one included.
        self.connections = 0

    def exchange_name(self, owner: str) -> str:
        return f"{self.prefix}.{owner}"

    def queue_name(self, consumer: str) -> str:
        return f"{self.prefix}.{consumer}"

    async def _open(self, purpose: str) -> AbstractConnection:
        conn = await aio_pika.connect(
            self.settings.amqp_url,
            client_properties={"connection_name": f"{self.connection_name}-{purpose}"},
            timeout=10,
        )
        return conn

    async def connect(self) -> None:
        """The publishing connection (and its confirming channel), opened again if it died."""
        conn, pub = self._conn, self._pub
        if conn is not None and pub is not None and not conn.is_closed and not pub.is_closed:
            return
        await self._drop_publisher()
        self._conn = await self._open("pub")
        self._pub = await self._conn.channel(publisher_confirms=True, on_return_raises=True)

    async def _drop_publisher(self) -> None:
        conn, self._conn, self._pub = self._conn, None, None
        self._exchanges.clear()
        self._declared.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            task, self._supervisor = self._supervisor, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_consumers()
        await self._drop_publisher()

    async def _exchange(
        self, channel: AbstractChannel, owner: str, cache: dict[str, AbstractExchange]
    ) -> AbstractExchange:
        ex = cache.get(owner)
        if ex is None:
            ex = await channel.declare_exchange(
                self.exchange_name(owner), aio_pika.ExchangeType.TOPIC, durable=True
            )
            cache[owner] = ex
        return ex

    async def _declare_queue(
        self,
        channel: AbstractChannel,
        consumer: str,
        cache: dict[str, AbstractExchange] | None = None,
    ) -> AbstractQueue:
        """Declare ``consumer``'s queue and its bindings on ``channel`` (exchange objects are
        cached per channel: an exchange object belongs to the channel that declared it)."""
        cache = {} if cache is None else cache
        queue = await channel.declare_queue(
            self.queue_name(consumer), durable=True, arguments=QUEUE_ARGS
        )
        for name in self.dispatcher.bus_bindings().get(consumer, []):
            ex = await self._exchange(channel, owner_of(name), cache)
            await queue.bind(ex, routing_key=name)
        return queue

    # -- publishing (the relay) -------------------------------------------------------------
    async def publish(self, env: Envelope, consumers: list[str]) -> None:
        async with self._lock:
            await self.connect()
            channel = self._pub
            assert channel is not None
            for c in consumers:
                if c not in self._declared:
                    await self._declare_queue(channel, c, self._exchanges)
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
        try:
            if env.target is not None:
                await channel.default_exchange.publish(
                    message, routing_key=self.queue_name(env.target), mandatory=True
                )
            else:
                ex = await self._exchange(channel, owner_of(env.name), self._exchanges)
                await ex.publish(message, routing_key=env.name, mandatory=True)
        except Exception:
            if channel.is_closed or (self._conn is not None and self._conn.is_closed):
                await self._drop_publisher()  # the next publish connects again
            raise

    # -- consuming (the worker) -------------------------------------------------------------
    async def consume(self, consumers: list[str] | None = None) -> list[str]:
        """Start consuming for ``consumers`` (default: every consumer with a bus edge): the
        first connection is made here (an unreachable broker raises), then a supervisor
        task reconnects whenever the connection or one of its channels closes."""
        bindings = self.dispatcher.bus_bindings()
        wanted = [c for c in (consumers or list(bindings)) if c in bindings]
        self._closing = False
        closed = await self._start_consumers(wanted)
        self._supervisor = asyncio.create_task(
            self._supervise(wanted, closed), name=f"{self.connection_name}-consumers"
        )
        return wanted

    async def _start_consumers(self, wanted: list[str]) -> list[Awaitable[Any]]:
        """One connection, a channel per consumer; returns what to wait on (their closing)."""
        conn = await self._open("consume")
        self._consumer_conn = conn
        self.connections += 1
        watch: list[Awaitable[Any]] = [conn.closed()]
        try:
            for consumer in wanted:
                channel = await conn.channel()
                await channel.set_qos(prefetch_count=self.settings.prefetch)
                queue = await self._declare_queue(channel, consumer)

                async def on_message(
                    msg: AbstractIncomingMessage, consumer: str = consumer
                ) -> None:
                    await self._handle(consumer, msg)

                await queue.consume(on_message)
                watch.append(channel.closed())
        except BaseException:
            await self._close_consumers()
            raise
        return watch

    async def _close_consumers(self) -> None:
        conn, self._consumer_conn = self._consumer_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def _supervise(self, wanted: list[str], watch: list[Awaitable[Any]]) -> None:
        while not self._closing:
            waiters = [asyncio.ensure_future(w) for w in watch]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            if self._closing:
                return
            _log.warning("%s: broker connection lost; reconnecting", self.connection_name)
            await self._close_consumers()
            while not self._closing:
                await asyncio.sleep(RECONNECT_S)
                try:
                    watch = await self._start_consumers(wanted)
                    _log.warning("%s: consuming again", self.connection_name)
                    break
                except Exception as exc:
                    _log.info("%s: broker not reachable yet (%s)", self.connection_name, exc)

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
            await _settle(msg.reject(requeue=False))
            return
        db = self.dispatcher.db
        error = ""
        for attempt in range(self.settings.consumer_attempts):
            try:
                with tenant_scope(tenant):
                    async with tenant_unit_of_work(db, tenant) as uow:
                        await self.dispatcher.deliver(uow, env, consumer)
            except (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError) as exc:
                _log.warning("consumer %s: database unavailable (%s); requeued", consumer, exc)
                await asyncio.sleep(1)
                await _settle(msg.nack(requeue=True))
                return
            except Exception as exc:
                error = f"{consumer}: {type(exc).__name__}: {exc}"
                self.dispatcher.report_failure(exc, replace(env, attempts=attempt), consumer)
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
                continue
            # Committed (effect + inbox row). If the channel died meanwhile the ack is lost:
            # the broker redelivers, and the inbox makes the redelivery a no-op.
            self.handled += 1
            await _settle(msg.ack())
            return
        try:
            async with tenant_unit_of_work(db, tenant) as uow:
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
            await _settle(msg.nack(requeue=True))
            return
        await _settle(msg.ack())


async def _settle(ack: Awaitable[Any]) -> None:
    """Ack or nack; on a channel that closed meanwhile it cannot be sent, and need not be:
    the broker requeues every unacked message of a closed channel."""
    try:
        await ack
    except Exception as exc:
        _log.info("ack/nack not sent (channel closed: %s); the broker will redeliver", exc)
