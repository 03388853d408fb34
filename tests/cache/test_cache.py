"""The cache: API, TTL, tags, tenant isolation, L1 coherence across two processes, sweep,
stats; the same contract on PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tenantry.capabilities.cache.api import CacheSettings, sweep
from tenantry.capabilities.cache.cache import Cache
from tenantry.kernel.config import Settings
from tenantry.kernel.db.privileged import admin_connection, platform_unit_of_work_as
from tenantry.kernel.errors import NoTenantContext
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.cli import cli as run
from tests.cli import process_env
from tests.conftest import MakeTenant

BACKENDS = ["pg_cache", "redis_cache"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=BACKENDS)
def cache(request: pytest.FixtureRequest) -> Cache:
    c: Cache = request.getfixturevalue(request.param)
    return c


async def test_get_set_delete_ttl_and_get_or_set(cache: Cache, make_tenant: MakeTenant) -> None:
    t = await make_tenant()
    with tenant_scope(t.tenant):
        assert await cache.get("user:1") is None
        await cache.set("user:1", {"name": "ada", "n": [1, 2]})
        assert await cache.get("user:1") == {"name": "ada", "n": [1, 2]}
        assert await cache.delete("user:1") is True
        assert await cache.get("user:1", "gone") == "gone"
        await cache.set("short:1", 1, ttl_s=0.05)
        await asyncio.sleep(0.15)
        assert await cache.get("short:1") is None
        calls = 0

        async def load() -> dict[str, int]:
            nonlocal calls
            calls += 1
            return {"v": 42}

        assert await cache.get_or_set("profile:9", load, ttl_s=30) == {"v": 42}
        assert await cache.get_or_set("profile:9", load, ttl_s=30) == {"v": 42}
        assert calls == 1
        with pytest.raises(ValueError, match="cache keys"):
            await cache.get("bad|key")


async def test_tags_invalidate_only_their_entries(cache: Cache, make_tenant: MakeTenant) -> None:
    t = await make_tenant()
    with tenant_scope(t.tenant):
        await cache.set("acct:1", 1, tags=["ledger", "acct-1"])
        await cache.set("acct:2", 2, tags=["ledger"])
        await cache.set("other:1", 3, tags=["misc"])
        assert await cache.invalidate_tags("ledger") == 2
        assert await cache.get("acct:1") is None
        assert await cache.get("acct:2") is None
        assert await cache.get("other:1") == 3


async def test_tenant_a_key_is_never_visible_to_tenant_b(
    cache: Cache, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant("schema")
    with tenant_scope(a.tenant):
        await cache.set("secret:1", "a-only", tags=["x"])
    with tenant_scope(b.tenant):
        assert await cache.get("secret:1") is None
        assert await cache.delete("secret:1") is False
        assert await cache.invalidate_tags("x") == 0
        await cache.set("secret:1", "b-value")
    with tenant_scope(a.tenant):
        assert await cache.get("secret:1") == "a-only"
    with pytest.raises(NoTenantContext):
        await cache.get("secret:1")


async def test_pg_rows_are_under_rls_and_the_table_is_unlogged(
    platform: Platform, pg_cache: Cache, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    with tenant_scope(a.tenant):
        await pg_cache.set("rls:1", "a")
    async with admin_connection(platform.db, as_owner=False) as conn:
        persistence = await conn.fetchval(
            "SELECT relpersistence FROM pg_class WHERE oid = 'tenantry.cache_entries'::regclass"
        )
    assert persistence in ("u", b"u")  # "char" comes back as bytes
    async with platform_unit_of_work_as(platform.db, b.tenant) as uow:
        n = await uow.fetchval(
            "SELECT count(*) FROM tenantry.cache_entries WHERE tenant_id = $1", a.tenant.id
        )
        assert n == 0
    # The function restores the caller's tenant when called inside a transaction.
    async with platform_unit_of_work_as(platform.db, b.tenant) as uow:
        assert await uow.fetchval("SELECT tenantry.cache_get($1, 'rls:1')", a.tenant.id) == (b'"a"')
        assert await uow.fetchval("SELECT current_setting('app.tenant_id')") == str(b.tenant.id)
    # A bare connection (no tenant) sees nothing.
    conn2 = await asyncpg.connect(platform.db.app_dsn())
    try:
        assert await conn2.fetchval("SELECT count(*) FROM tenantry.cache_entries") == 0
    finally:
        await conn2.close()


async def test_l1_serves_repeated_reads_and_own_writes(
    pg_cache: Cache, make_tenant: MakeTenant
) -> None:
    assert pg_cache._coherent, "the platform's cache listens for invalidations"
    t = await make_tenant()
    with tenant_scope(t.tenant):
        await pg_cache.set("l1:1", {"x": 1})
        size = len(pg_cache.l1)
        assert await pg_cache.get("l1:1") == {"x": 1}
        assert len(pg_cache.l1) == size
        await pg_cache.delete("l1:1")
        assert await pg_cache.get("l1:1") is None


async def test_sweep_removes_expired_rows_of_every_tenant(
    platform: Platform, pg_cache: Cache, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant(), await make_tenant()
    for t in (a, b):
        with tenant_scope(t.tenant):
            await pg_cache.set("sweep:1", 1, ttl_s=0.01)
            await pg_cache.set("sweep:keep", 1, ttl_s=3600)
    await asyncio.sleep(0.05)
    assert await sweep(pg_cache, platform.settings.section("cache", CacheSettings)) >= 2
    async with admin_connection(platform.db, as_owner=False) as conn:
        left = await conn.fetch(
            "SELECT key FROM tenantry.cache_entries WHERE tenant_id = ANY($1)",
            [a.tenant.id, b.tenant.id],
        )
    assert sorted(r["key"] for r in left) == ["sweep:keep", "sweep:keep"]


async def test_sweep_runs_every_5_minutes_with_the_configured_batch(
    settings: Settings, make_tenant: MakeTenant
) -> None:
    """The default interval is 300 s; a started platform's loop sweeps on that interval and
    passes ``sweep_batch`` (never the backend's default): here 0.2 s and a batch of 1, so
    three expired rows take four statements and are all gone within a few intervals."""
    assert CacheSettings().sweep_interval_s == 300
    fast = Settings.model_validate(
        {**settings.model_dump(), "cache": {"sweep_interval_s": 0.2, "sweep_batch": 1}}
    )
    p = Platform.build(fast, discover())
    await p.start()
    try:
        assert p.settings.section("cache", CacheSettings).sweep_batch == 1
        cache = p.use(Cache)
        t = await make_tenant()
        batches: list[int] = []
        backend_sweep = cache.backend.sweep

        async def spy(batch: int = 10_000, audit: Any = None) -> int:
            batches.append(batch)
            return await backend_sweep(batch, audit)

        cache.backend.sweep = spy  # type: ignore[method-assign]
        with tenant_scope(t.tenant):
            for i in range(3):
                await cache.set(f"loop:{i}", i, ttl_s=0.01)
        before = cache.sweeps
        await asyncio.sleep(0.7)
        assert cache.sweeps - before >= 2
        assert batches
        assert set(batches) == {1}
        async with admin_connection(p.db, as_owner=False) as conn:
            left = await conn.fetchval(
                "SELECT count(*) FROM tenantry.cache_entries WHERE tenant_id = $1", t.tenant.id
            )
        assert left == 0
    finally:
        await p.close()


async def test_stats_per_prefix(
    settings: Settings, pg_cache: Cache, make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    t = await make_tenant()
    await pg_cache.flush_stats()
    with tenant_scope(t.tenant):
        await pg_cache.get("statsprobe:1")
        await pg_cache.set("statsprobe:1", 1)
        await pg_cache.get("statsprobe:1")
        await pg_cache.get("statsprobe:2")
    await pg_cache.flush_stats()
    rows = {r["prefix"]: r for r in await pg_cache.stats()}
    probe = rows["statsprobe"]
    assert (probe["hits"], probe["misses"], probe["sets"]) == (1, 2, 1)
    assert probe["hit_rate_pct"] == pytest.approx(33.33)
    r = run(settings, "cache", "stats")
    assert r.returncode == 0, r.stderr
    assert "statsprobe" in r.stdout


async def _line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert raw, "peer process died"
    out: dict[str, Any] = json.loads(raw)
    return out


async def test_l1_is_coherent_across_two_processes(
    settings: Settings, pg_cache: Cache, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    with tenant_scope(t.tenant):
        await pg_cache.set("shared:1", "v1", tags=["grp"])
    env = process_env(settings)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.cache.peer",
        str(t.tenant.id),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdin is not None
    try:
        assert (await _line(proc))["ready"]

        async def ask(key: str) -> dict[str, Any]:
            assert proc.stdin is not None
            proc.stdin.write(f"get {key}\n".encode())
            await proc.stdin.drain()
            return await _line(proc)

        assert (await ask("shared:1"))["value"] == "v1"  # from PostgreSQL, now in its L1
        second = await ask("shared:1")
        assert second == {"value": "v1", "l1_hits": 1}  # served by its L1
        with tenant_scope(t.tenant):
            await pg_cache.set("shared:1", "v2")
        await asyncio.sleep(0.3)  # NOTIFY delivery
        assert (await ask("shared:1"))["value"] == "v2"
        assert (await ask("shared:1"))["l1_hits"] == 2
        with tenant_scope(t.tenant):
            await pg_cache.set("shared:2", "tagged", tags=["grp"])
        assert (await ask("shared:2"))["value"] == "tagged"
        with tenant_scope(t.tenant):
            await pg_cache.invalidate_tags("grp")
        await asyncio.sleep(0.3)
        assert (await ask("shared:2"))["value"] is None
        with tenant_scope(t.tenant):
            await pg_cache.delete("shared:1")
        await asyncio.sleep(0.3)
        assert (await ask("shared:1"))["value"] is None
        proc.stdin.write(b"quit\n")
        await proc.stdin.drain()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_pg_connections_queue_callers_and_replace_broken_connections(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    """The backend's own minimal pool: more concurrent calls than connections all complete;
    a call cancelled mid-query and a connection killed by the server do not break later
    calls."""
    from tenantry.capabilities.cache.pg import PgBackend

    t = await make_tenant()
    backend = PgBackend(platform.db, origin="test-conns", pool_size=2)
    cache = Cache(backend, platform.db, l1_size=0)
    conns = backend.connections()
    try:
        with tenant_scope(t.tenant):
            await cache.set("conn:1", {"v": 1})
            got = await asyncio.gather(*(cache.get("conn:1") for _ in range(50)))
            assert got == [{"v": 1}] * 50
            assert len(conns._all) == 2

            slow = asyncio.create_task(conns.run("execute", "SELECT pg_sleep(5)"))
            await asyncio.sleep(0.2)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            assert len(conns._all) <= 2
            assert await cache.get("conn:1") == {"v": 1}

            pids = [c.get_server_pid() for c in conns._all]
            killer = await asyncpg.connect(platform.db.app_dsn())  # same role: may terminate
            try:
                for pid in pids:
                    assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
            finally:
                await killer.close()
            await asyncio.sleep(0.3)  # the backends exit
            assert await cache.get("conn:1") == {"v": 1}
            # A server-side error leaves the connection in use.
            with pytest.raises(asyncpg.PostgresError):
                await conns.run("execute", "SELECT 1/0")
            assert await cache.get("conn:1") == {"v": 1}
    finally:
        await cache.close()


async def test_pg_connections_waiters_do_not_hang_when_connecting_fails() -> None:
    """Callers queued behind a connection that fails to open each get an error, not a hang."""
    from tenantry.capabilities.cache.pg import Connections

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conns = Connections(f"postgresql://nobody@127.0.0.1:{port}/none", 1, {})
    results = await asyncio.wait_for(
        asyncio.gather(
            *(conns.run("fetchval", "SELECT 1") for _ in range(3)), return_exceptions=True
        ),
        timeout=30,
    )
    assert all(isinstance(r, OSError) for r in results), results
    await conns.close()
