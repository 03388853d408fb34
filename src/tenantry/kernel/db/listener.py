"""One reconnecting LISTEN connection per database, shared by every subscriber of a process.

Everything in a process that waits for NOTIFY goes through here (``Database.listen``): the
outbox relay's and the job runner's wake-ups, and the NOTIFY-invalidated caches (tenant
catalog, principal status, authz, plans, flags, cache L1). One connection per (server,
database), not one per subscriber.

**Supervision.** A task watches the connection: asyncpg's termination listener reports a
connection the server closed (``pg_terminate_backend``, a restart) at once, and a ``SELECT 1``
every ``keepalive_s`` (10 s) finds one a network silently dropped. A lost connection is
re-opened with jittered exponential backoff (``backoff_min_s`` 0.1 s doubling to
``backoff_max_s`` 5 s), and LISTEN is re-issued for every subscribed channel.

**What a subscriber sees.** NOTIFYs sent while the connection was down are lost. So, after
every *re*-connect, each subscriber's callback is called once per channel with an **empty
payload**, which every subscriber reads as "anything may have changed": caches drop
everything, the relay and the job runner look at every tenant at once. ``on_lost`` and
``on_reconnect`` hooks run on each loss and each re-connect (the cache L1 is off in between).
``connected`` says whether LISTEN is live now; ``reconnects`` counts the re-connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import asyncpg

_log = logging.getLogger("tenantry.db.listen")

#: A NOTIFY callback: (connection, backend pid, channel, payload).
Callback = Callable[[Any, int, str, object], None]
Hook = Callable[[], None]
#: The payload of the notification delivered after a re-connect: "anything may have changed".
RECONNECTED = ""

_CONNECT_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def backoff_delay(attempt: int, low: float, high: float) -> float:
    """``low * 2**attempt`` capped at ``high``, times a jitter of 0.5..1."""
    return float(min(high, low * (2.0 ** min(attempt, 30))) * (0.5 + random.random() / 2))


class NotifyListener:
    def __init__(
        self,
        dsn: str,
        *,
        name: str = "main",
        keepalive_s: float = 10.0,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.name = name
        self.keepalive_s = keepalive_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.reconnects = 0
        self.on_lost: list[Hook] = []
        self.on_reconnect: list[Hook] = []
        self._subs: dict[str, list[Callback]] = {}
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one operation at a time on the connection
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._ever_connected = False

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def channels(self) -> list[str]:
        return list(self._subs)

    # -- subscriptions ----------------------------------------------------------------------
    async def subscribe(self, channel: str, callback: Callback) -> None:
        """Call ``callback`` for every NOTIFY on ``channel``. Connects on the first call; if
        the database is unreachable, the callback is registered anyway and LISTEN starts
        once the supervisor gets through (the subscriber polls meanwhile, as it must)."""
        first = channel not in self._subs
        self._subs.setdefault(channel, []).append(callback)
        if self._task is None or self._task.done():
            self._closing = False
            try:
                await self._connect()
            except _CONNECT_ERRORS as exc:
                _log.warning("LISTEN on %s: cannot connect (%s); retrying", self.name, exc)
                # Whatever the subscriber caches from now on may miss a NOTIFY: the first
                # successful connect counts as a re-connect (everything invalidated).
                self._ever_connected = True
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"tenantry-listen-{self.name}"
            )
            return
        if first and self.connected:
            try:
                async with self._lock:
                    assert self._conn is not None
                    await self._conn.add_listener(channel, self._dispatch)
            except _CONNECT_ERRORS as exc:
                # Lost meanwhile: the supervisor re-connects and LISTENs on every channel.
                _log.warning("LISTEN %s on %s failed: %s", channel, self.name, exc)
                self._lost.set()

    async def unsubscribe(self, channel: str, callback: Callback) -> None:
        subs = self._subs.get(channel)
        if not subs:
            return
        with contextlib.suppress(ValueError):
            subs.remove(callback)
        if subs:
            return
        del self._subs[channel]
        if self.connected:
            with contextlib.suppress(*_CONNECT_ERRORS):
                async with self._lock:
                    assert self._conn is not None
                    await self._conn.remove_listener(channel, self._dispatch)

    def _dispatch(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        for callback in list(self._subs.get(channel, ())):
            try:
                callback(conn, pid, channel, payload)
            except Exception:
                _log.exception("NOTIFY subscriber of %s failed", channel)

    # -- the connection -----------------------------------------------------------------------
    async def _connect(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn, server_settings={"application_name": "tenantry-listen"}, timeout=10
        )
        try:
            for channel in list(self._subs):
                await conn.add_listener(channel, self._dispatch)
        except BaseException:
            conn.terminate()
            raise
        self._lost.clear()
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        reconnected, self._ever_connected = self._ever_connected, True
        if reconnected:
            self.reconnects += 1
            _log.warning("LISTEN connection to %s re-opened", self.name)
            for hook in list(self.on_reconnect):
                self._call(hook)
            for channel in list(self._subs):
                self._dispatch(conn, 0, channel, RECONNECTED)

    def _terminated(self, _conn: Any) -> None:
        if not self._closing:
            self._lost.set()

    @staticmethod
    def _call(hook: Hook) -> None:
        try:
            hook()
        except Exception:
            _log.exception("LISTEN hook failed")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
        for hook in list(self.on_lost):
            self._call(hook)

    async def _alive(self) -> bool:
        """Wait up to ``keepalive_s`` for a loss; then probe with ``SELECT 1``."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._lost.wait(), self.keepalive_s)
            return False
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            async with self._lock:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), self.keepalive_s)
        except _CONNECT_ERRORS as exc:
            _log.warning("LISTEN connection to %s: keepalive failed: %s", self.name, exc)
            return False
        return True

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            if not self.connected:
                try:
                    await self._connect()
                    attempt = 0
                except _CONNECT_ERRORS as exc:
                    delay = backoff_delay(attempt, self.backoff_min_s, self.backoff_max_s)
                    attempt += 1
                    if attempt == 1 or attempt % 10 == 0:
                        _log.warning(
                            "LISTEN connection to %s: cannot connect (%s); retrying in %.2fs",
                            self.name,
                            exc,
                            delay,
                        )
                    await asyncio.sleep(delay)
                    continue
            if not await self._alive() and not self._closing:
                _log.warning("LISTEN connection to %s lost; re-connecting", self.name)
                self._drop()

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*_CONNECT_ERRORS):
                await conn.close(timeout=2)
            if not conn.is_closed():
                conn.terminate()
