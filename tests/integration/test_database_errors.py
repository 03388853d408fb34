"""A lost database is a 503 ``database-unavailable`` with ``Retry-After``, never a 500.

The errors are real: connections terminated by ``pg_terminate_backend``, a connect to a port
nobody listens on, a closed pool. ``database_unavailable`` must recognise each, and must not
recognise SQL errors, bad values, a cancelled statement or an OSError from elsewhere.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tenantry.kernel.db.errors import DRIVER_ERRORS, database_unavailable
from tenantry.kernel.db.privileged import admin_connection, admin_dsn
from tenantry.kernel.db.uow import PLATFORM_SCHEMA, begin_sql, pooled_transaction
from tenantry.kernel.http import problems
from tenantry.kernel.platform import Platform

Caught = Callable[[], Awaitable[BaseException]]


async def _raised(coro: Awaitable[Any]) -> BaseException:
    try:
        await coro
    except BaseException as exc:  # the error is what the test looks at
        return exc
    raise AssertionError("expected an error")


async def _terminated_mid_query(platform: Platform) -> BaseException:
    """A query whose connection the server terminates while it runs."""
    conn = await asyncpg.connect(platform.db.app_dsn())
    admin = await asyncpg.connect(admin_dsn(platform.db))
    try:
        pid = conn.get_server_pid()
        running = asyncio.create_task(conn.execute("SELECT pg_sleep(10)"))
        await asyncio.sleep(0.2)
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        return await _raised(running)
    finally:
        await admin.close()
        conn.terminate()


async def _self_terminated(platform: Platform) -> BaseException:
    conn = await asyncpg.connect(platform.db.app_dsn())
    try:
        return await _raised(conn.execute("SELECT pg_terminate_backend(pg_backend_pid())"))
    finally:
        conn.terminate()


async def _used_after_loss(platform: Platform) -> BaseException:
    """The next query on a connection the server dropped while it sat idle."""
    conn = await asyncpg.connect(platform.db.app_dsn())
    admin = await asyncpg.connect(admin_dsn(platform.db))
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
        await asyncio.sleep(0.3)
        return await _raised(conn.fetchval("SELECT 1"))
    finally:
        await admin.close()
        conn.terminate()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _refused(_platform: Platform) -> BaseException:
    return await _raised(
        asyncpg.connect(host="127.0.0.1", port=_free_port(), user="x", database="x", timeout=5)
    )


async def _closed_pool(platform: Platform) -> BaseException:
    pool = await platform.db.new_pool("default", None, min_size=0, max_size=1)
    await pool.close()
    return await _raised(pool.acquire())


LOST = {
    "terminated mid-query": _terminated_mid_query,
    "terminated by itself": _self_terminated,
    "used after the server dropped it": _used_after_loss,
    "connect refused": _refused,
    "acquire on a closed pool": _closed_pool,
}


@pytest.mark.parametrize("case", list(LOST))
async def test_lost_database_is_recognised(platform: Platform, case: str) -> None:
    exc = await LOST[case](platform)
    assert database_unavailable(exc), f"{type(exc).__name__}: {exc}"


def test_synthetic_connection_errors_are_recognised() -> None:
    for exc in (
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("crash"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.ConnectionFailureError("x"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    ):
        assert database_unavailable(exc), exc
    wrapped = RuntimeError("step failed")
    wrapped.__cause__ = asyncpg.AdminShutdownError("terminating")
    assert database_unavailable(wrapped)


async def test_other_errors_are_not(platform: Platform) -> None:
    async with admin_connection(platform.db, as_owner=False) as conn:
        syntax = await _raised(conn.execute("SELEC 1"))
        value = await _raised(conn.fetchval("SELECT 1/0"))
        await conn.execute("SET statement_timeout = 50")
        cancelled = await _raised(conn.execute("SELECT pg_sleep(1)"))
        await conn.execute("RESET statement_timeout")
        unique = await _raised(
            conn.execute("CREATE TEMP TABLE u (x int PRIMARY KEY); INSERT INTO u VALUES (1), (1)")
        )
    assert isinstance(cancelled, asyncpg.QueryCanceledError)
    os_error = await _raised(asyncio.open_connection("127.0.0.1", _free_port()))
    assert isinstance(os_error, OSError)
    for exc in (syntax, value, cancelled, unique, os_error, ValueError("x"), None):
        assert not database_unavailable(exc), exc
    assert not database_unavailable(asyncpg.InterfaceError("cannot use Connection.transaction()"))


@pytest.fixture
async def app_client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A bare app with the platform's problem handlers and routes that hit real errors."""
    app = FastAPI()
    problems.install(app)

    @app.get("/lost")
    async def lost() -> None:
        await _terminated_mid_query_raise(platform)

    @app.get("/refused")
    async def refused() -> None:
        await asyncpg.connect(host="127.0.0.1", port=_free_port(), user="x", database="x")

    @app.get("/pool-lost")
    async def pool_lost() -> int:
        pool = await platform.db.pool()
        async with pool.acquire() as conn:
            value: int = await conn.fetchval("SELECT pg_terminate_backend(pg_backend_pid())::int")
            return value

    @app.get("/sql-error")
    async def sql_error() -> None:
        pool = await platform.db.pool()
        async with pool.acquire() as conn:
            await conn.execute("SELEC 1")

    @app.get("/other-oserror")
    async def other_oserror() -> None:
        await asyncio.open_connection("127.0.0.1", _free_port())

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def _terminated_mid_query_raise(platform: Platform) -> None:
    raise await _terminated_mid_query(platform)


@pytest.mark.parametrize("path", ["/lost", "/refused", "/pool-lost"])
async def test_lost_database_answers_503_with_retry_after(
    app_client: httpx.AsyncClient, path: str
) -> None:
    r = await app_client.get(path)
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/database-unavailable")
    assert body["status"] == 503


@pytest.mark.parametrize("path", ["/sql-error", "/other-oserror"])
async def test_other_errors_stay_500(app_client: httpx.AsyncClient, path: str) -> None:
    r = await app_client.get(path)
    assert r.status_code == 500, r.text
    assert "retry-after" not in r.headers


async def test_openapi_declares_the_503(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    op = doc["paths"]["/api/v1/identity/users"]["get"]
    declared = op["responses"]["503"]
    assert "Retry-After" in declared["headers"]
    assert "database-unavailable" in declared["description"]


# -- the unit of work on a dropped connection ---------------------------------------------------
async def test_begin_is_retried_on_a_pooled_connection_dropped_while_idle(
    platform: Platform,
) -> None:
    """The pool's one connection is terminated while idle, and used at once: BEGIN finds out
    (before: 15 of 20 units of work failed, ConnectionDoesNotExist or InternalClientError)."""
    pool = await platform.db.new_pool("default", None, min_size=1, max_size=1)
    admin = await asyncpg.connect(admin_dsn(platform.db))
    failures: list[str] = []
    try:
        for _ in range(20):
            async with pool.acquire() as c:
                pid = c.get_server_pid()
            await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            try:
                async with pooled_transaction(pool, begin_sql(None, PLATFORM_SCHEMA)) as conn:
                    assert await conn.fetchval("SELECT 1") == 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        await admin.close()
        await pool.close()
    assert failures == []


async def test_a_connection_lost_mid_transaction_raises_the_loss_not_a_second_error(
    platform: Platform,
) -> None:
    """The ROLLBACK path on a dead connection must not replace the error (before: asyncpg's
    "connection has been released back to the pool" from ``is_closed()`` of the detached
    proxy)."""
    pool = await platform.db.new_pool("default", None, min_size=1, max_size=1)
    try:
        for _ in range(5):
            with pytest.raises(DRIVER_ERRORS) as caught:
                async with pooled_transaction(pool, begin_sql(None, PLATFORM_SCHEMA)) as conn:
                    await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            assert "released back to the pool" not in str(caught.value)
            assert database_unavailable(caught.value), repr(caught.value)
        async with pooled_transaction(pool, begin_sql(None, PLATFORM_SCHEMA)) as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
