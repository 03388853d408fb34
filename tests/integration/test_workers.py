"""``tenantry serve --workers 2``: two HTTP processes, as an operator runs them (issue 20,
"Several processes").

One server (a real ``tenantry serve --workers 2`` on a free port, the module's database, the
Redis rate-limit backend) serves the module. Requests go out on fresh connections, several
at once, so both workers answer (``X-Tenantry-Worker`` names the process). The checks:

- requests spread over both workers; rate limits hold across them (a tenant's burst is its
  burst, not twice it);
- every in-process cache stays coherent: a change made through one worker (or by another
  process: the test's own platform on the same database, as ``tenantry`` commands are) is
  seen by *both* workers within a bound shorter than each cache's TTL, i.e. by NOTIFY: the
  authz policy snapshot, principal status, the tenant catalog, plans, flags, signing keys;
- the outbox relay delivers each message once (a webhook receiver counts them), the job
  worker runs each job once, and a crashed onboarding saga is resumed by one worker, once,
  with two server processes (and the test's platform) relaying;
- SIGTERM drains: a request in flight completes with 200, new connections are refused, the
  process exits 0 (one process and two);
- bad values are one line and exit 2.

The cache capability's read paths (profiles, project lists, tenant settings, permission
rules, dashboard metadata) and their L1 are checked across processes by their own tests
(tests/cache, tests/capabilities/test_authz_cache.py and the modules' cache tests: a second
``Cache`` with its own LISTEN connection stands in for another process), not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import jwt
import pytest

from tenantry.capabilities.entitlements.plans import Plans
from tenantry.capabilities.flags.store import FlagStore
from tenantry.kernel.config import Settings
from tenantry.kernel.http.workers import (
    WORKER_HEADER,
    cpu_count,
    resolve_workers,
    server_config,
    worker_app,
)
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode, TenantStatus
from tenantry.testing import admin_connection, get_token
from tests.cli import EXE, database_toml, process_env
from tests.conftest import PASSWORD, MakeTenant, TenantFixture
from tests.integration.test_onboarding_crash import free_port, kill, kill_at, slug_for, tail
from tests.services import REDIS_URL, require_redis

#: Seconds within which a change must reach both workers: below every TTL that would
#: otherwise refresh the caches (catalog, plans, principal status 5 s; authz snapshot 60 s;
#: the signing key's re-read 5 s), so only the NOTIFY can make it.
BOUND_S = 3.0
TIGHT_BURST = 8
#: The server's ``messaging.saga_stale_s``: its workers resume a saga without a heartbeat for
#: this long. Every process that runs sagas must use the same value (a saga beats every
#: stale_s / 3): the test's own platform and its ``tenants create`` are set to it as well.
SAGA_STALE_S = 1.0
Popen = subprocess.Popen[bytes]


def write_config(path: Path, settings: Settings, *, redis: bool = True) -> Path:
    path.write_text(
        database_toml(settings, pool_max=5)
        + f"""
[http]
graceful_timeout_s = 10

[ratelimit]
backend = "{"redis" if redis else "memory"}"
redis_url = "{REDIS_URL}"
anonymous_rate_per_s = 1000
anonymous_burst = 1000

[messaging]
saga_stale_s = {SAGA_STALE_S}

[notifications]
allow_private_targets = true

[exports]
storage_path = "{path.parent / "exports"}"
"""
    )
    return path


def spawn_serve(env: dict[str, str], port: int, workers: int, log: Path) -> Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [EXE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def start_serve(env: dict[str, str], workers: int, log: Path) -> tuple[Popen, str, int]:
    """``tenantry serve --workers N`` on a free port, once /readyz answers 200."""
    port = free_port()
    proc = spawn_serve(env, port, workers, log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited (rc {proc.returncode}): {tail(log)}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return proc, base, port
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                kill(proc)
                raise AssertionError(f"serve never became ready: {tail(log)}")
            await asyncio.sleep(0.2)


def stop(proc: Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        kill(proc)
        raise


def pinnable(base: str) -> httpx.AsyncClient:
    """A client of one connection: it stays with the worker that accepted it (keep-alive)."""
    return httpx.AsyncClient(
        base_url=base,
        timeout=10,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


class Server:
    """The server under test, with one kept-alive connection to each worker, so a request
    is sent to the worker chosen (the kernel hands a new connection to whichever worker
    accepts first: under load one may take every connection for a while)."""

    def __init__(self, proc: Popen, base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log
        self.pinned: dict[str, httpx.AsyncClient] = {}

    async def _burst(self, n: int = 12) -> None:
        """Open ``n`` connections at once; keep one to each worker not pinned yet."""
        clients = [pinnable(self.base) for _ in range(n)]
        answers = await asyncio.gather(*(c.get("/healthz") for c in clients))
        for client, r in zip(clients, answers, strict=True):
            worker = r.headers["x-tenantry-worker"]
            if worker not in self.pinned:
                self.pinned[worker] = client
            else:
                await client.aclose()

    async def workers(self) -> list[str]:
        """The two workers' ids (pids), each with a connection of its own."""
        for _ in range(60):
            if len(self.pinned) >= 2:
                return sorted(self.pinned)
            await self._burst()
        raise AssertionError(f"one worker accepted every connection: {list(self.pinned)}")

    async def on(self, worker: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """``method path`` answered by ``worker`` (a read: it is sent again if the kept-alive
        connection had closed and its replacement reached the other worker)."""
        for _ in range(60):
            client = self.pinned.get(worker)
            if client is None:
                await self._burst()
                continue
            r = await client.request(method, path, **kw)
            got = r.headers["x-tenantry-worker"]
            if got == worker:
                return r
            del self.pinned[worker]  # re-connected elsewhere: re-pin
            if got not in self.pinned:
                self.pinned[got] = client
            else:
                await client.aclose()
        raise AssertionError(f"worker {worker} accepted no connection")

    async def on_both(self, method: str, path: str, **kw: Any) -> dict[str, httpx.Response]:
        """The same request answered by each of the two workers."""
        return {w: await self.on(w, method, path, **kw) for w in await self.workers()}

    async def alternate(
        self,
        method: str,
        path: str,
        n: int,
        each: Callable[[], dict[str, str]] | None = None,
        **kw: Any,
    ) -> list[tuple[str, httpx.Response]]:
        """``n`` requests, two at a time, one on each worker's connection: (worker, response)
        each. ``each``: headers of its own per request, added to ``headers``."""
        workers = await self.workers()
        for w in workers:  # a connection idle past the keep-alive timeout is replaced now
            await self.on(w, "GET", "/healthz")
        workers = await self.workers()

        async def one(worker: str) -> tuple[str, httpx.Response]:
            args = dict(kw)
            if each is not None:
                args["headers"] = {**kw.get("headers", {}), **each()}
            r = await self.pinned[worker].request(method, path, **args)
            return r.headers["x-tenantry-worker"], r

        out: list[tuple[str, httpx.Response]] = []
        for i in range(0, n, 2):
            out += await asyncio.gather(*(one(w) for w in workers[: min(2, n - i)]))
        return out

    async def until_both(
        self, method: str, path: str, ok: Callable[[httpx.Response], bool], **kw: Any
    ) -> float:
        """Seconds until both workers answer ``ok`` (at most BOUND_S)."""
        started = time.monotonic()
        last: dict[str, httpx.Response] = {}
        while time.monotonic() - started < BOUND_S:
            last = await self.on_both(method, path, **kw)
            if all(ok(r) for r in last.values()):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        answers = {w: (r.status_code, r.text[:200]) for w, r in last.items()}
        raise AssertionError(f"not seen by both workers within {BOUND_S}s: {answers}")

    async def close(self) -> None:
        for client in self.pinned.values():
            await client.aclose()
        self.pinned.clear()


@pytest.fixture(scope="module", autouse=True)
def _sagas_beat_as_the_servers_expect(platform: Platform) -> None:
    """This module's platform onboards the tenants: its sagas must beat as often as the
    servers' resumers expect (with its default 30 s they would take its onboardings over)."""
    platform.sagas.stale_s = SAGA_STALE_S


@pytest.fixture(scope="module")
async def server(
    settings: Settings, platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    await require_redis()
    tmp = tmp_path_factory.mktemp("workers")
    env = {**process_env(settings), "TENANTRY_CONFIG": str(write_config(tmp / "t.toml", settings))}
    proc, base, _ = await start_serve(env, 2, tmp / "serve.log")
    served = Server(proc, base, tmp / "serve.log")
    try:
        yield served
    finally:
        await served.close()
        rc = stop(proc)
        assert rc == 0, f"serve --workers 2 exited {rc}: {tail(tmp / 'serve.log')}"


# -- the number of workers -------------------------------------------------------------------
def test_default_is_one_per_core_and_one_with_per_process_rate_limits() -> None:
    assert resolve_workers(None, None, None).n == cpu_count()
    assert resolve_workers(None, 3, None).n == 3
    assert resolve_workers(5, 3, None).n == 5
    memory = resolve_workers(None, None, "memory")
    assert memory.n == 1
    assert (memory.note is not None) == (cpu_count() > 1)
    assert resolve_workers(1, None, "memory").n == 1


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--workers", "0"], {}, "--workers"),
        (["--workers", "abc"], {}, "--workers"),
        (["--workers", "65"], {}, "--workers"),
        (["--workers", "3"], {}, 'ratelimit.backend = "redis"'),
        ([], {"TENANTRY_HTTP__WORKERS": "3"}, "[http] workers 3"),
    ],
    ids=["zero", "not-a-number", "too-many", "memory-backend", "memory-backend-config"],
)
def test_bad_worker_counts_are_one_line_and_exit_2(
    settings: Settings, args: list[str], env: dict[str, str], says: str
) -> None:
    done = subprocess.run(
        [EXE, "serve", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        env={**process_env(settings), **env},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    assert says in lines[0]
    assert "Traceback" not in done.stderr


async def test_a_worker_app_starts_its_platform_and_closes_it(settings: Settings) -> None:
    """What each worker process runs (the factory and its lifespan), here in-process: a
    platform of its own, started before the first request, closed at the end."""
    assert settings.database.url
    app = worker_app(settings, settings.database.url)
    platform: Platform = app.state.platform
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://w") as http:
            assert (await http.get("/readyz")).status_code == 200
        assert platform.keyring.knows(next(iter(platform.keyring.jwks()["keys"]))["kid"])
    assert not platform._started
    config = server_config(app, "127.0.0.1", free_port(), settings)
    config.load()
    assert (WORKER_HEADER, str(os.getpid()).encode()) in config.encoded_headers


# -- two workers ------------------------------------------------------------------------------
async def test_requests_spread_over_both_workers(server: Server) -> None:
    seen = await server.on_both("GET", "/healthz")
    assert len(seen) == 2
    assert all(r.status_code == 200 for r in seen.values())
    assert server.proc.pid not in {int(w) for w in seen}  # the parent only supervises


async def test_rate_limit_holds_across_workers(
    server: Server, platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    await platform.use(Plans).set_override(t.tenant, {"rate_per_s": 0.01, "burst": TIGHT_BURST})
    answers = await server.alternate("GET", "/api/v1/identity/me", 24, headers=t.auth)
    assert len({w for w, _ in answers}) == 2, "one worker answered every request"
    allowed = [r for _, r in answers if r.status_code == 200]
    refused = [r for _, r in answers if r.status_code == 429]
    assert len(allowed) + len(refused) == len(answers)
    # One bucket for both processes: the burst, not twice it (rate 0.01/s adds none here).
    assert len(allowed) <= TIGHT_BURST, (len(allowed), len(answers))
    assert len(allowed) >= TIGHT_BURST - 1


async def enterprise(make_tenant: MakeTenant, isolation: str = "shared") -> TenantFixture:
    return await make_tenant(isolation=isolation, plan="enterprise")


@pytest.mark.parametrize("isolation", ["shared", "database"])
async def test_authz_policy_change_reaches_both_workers(
    server: Server, make_tenant: MakeTenant, isolation: str
) -> None:
    t = await enterprise(make_tenant, isolation)
    path = "/api/v1/ledger/accounts"
    assert {
        r.status_code for r in (await server.on_both("GET", path, headers=t.auth)).values()
    } == {200}
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        r = await http.put(
            "/api/v1/authz/policies/no-ledger-reads",
            headers=t.auth,
            json={
                "effect": "deny",
                "actions": ["ledger:read"],
                "roles": ["admin"],
                "description": "two workers",
            },
        )
    assert r.status_code in (200, 201), r.text
    await server.until_both("GET", path, lambda r: r.status_code == 403, headers=t.auth)


@pytest.mark.parametrize("isolation", ["shared", "database"])
async def test_disabled_user_is_refused_by_both_workers(
    server: Server, make_tenant: MakeTenant, isolation: str
) -> None:
    t = await enterprise(make_tenant, isolation)
    email = f"member-{uuid4().hex[:8]}@{t.tenant.slug}.test"
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        r = await http.post(
            "/api/v1/identity/users",
            headers=t.auth,
            json={"email": email, "password": PASSWORD, "roles": ["admin"]},
        )
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
        member = {
            "Authorization": f"Bearer {await get_token(http, email, PASSWORD, t.tenant.slug)}"
        }
        seen = await server.on_both("GET", "/api/v1/identity/me", headers=member)
        assert {r.status_code for r in seen.values()} == {200}
        r = await http.post(f"/api/v1/identity/users/{user_id}/disable", headers=t.auth)
        assert r.status_code == 200, r.text
    await server.until_both(
        "GET", "/api/v1/identity/me", lambda r: r.status_code == 401, headers=member
    )


async def test_suspended_tenant_is_refused_by_both_workers(
    server: Server, platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await enterprise(make_tenant)
    seen = await server.on_both("GET", "/api/v1/identity/me", headers=t.auth)
    assert {r.status_code for r in seen.values()} == {200}, [r.text for r in seen.values()]
    await platform.provisioner.set_status(t.tenant.slug, TenantStatus.SUSPENDED)
    await server.until_both(
        "GET", "/api/v1/identity/me", lambda r: r.status_code == 403, headers=t.auth
    )


@pytest.mark.parametrize("isolation", ["shared", "database"])
async def test_plan_override_reaches_both_workers(
    server: Server, platform: Platform, make_tenant: MakeTenant, isolation: str
) -> None:
    t = await enterprise(make_tenant, isolation)
    path = "/api/v1/entitlements/plan"
    seen = await server.on_both("GET", path, headers=t.auth)
    assert {r.status_code for r in seen.values()} == {200}, [r.text for r in seen.values()]
    assert {r.json()["burst"] for r in seen.values()} == {3000}
    await platform.use(Plans).set_override(t.tenant, {"burst": 2999})
    await server.until_both("GET", path, lambda r: r.json().get("burst") == 2999, headers=t.auth)


@pytest.mark.parametrize("isolation", ["shared", "database"])
async def test_flag_change_reaches_both_workers(
    server: Server, platform: Platform, make_tenant: MakeTenant, isolation: str
) -> None:
    t = await enterprise(make_tenant, isolation)
    name = f"workers-{uuid4().hex[:6]}"
    seen = await server.on_both("GET", "/api/v1/flags/mine", headers=t.auth)
    assert all(not r.json().get(name) for r in seen.values())
    await platform.use(FlagStore).set_target(name, t.tenant, True)
    await server.until_both(
        "GET", "/api/v1/flags/mine", lambda r: r.json().get(name) is True, headers=t.auth
    )


async def test_rotated_key_reaches_both_workers(
    server: Server, platform: Platform, make_tenant: MakeTenant
) -> None:
    """A key rotated by another process (``tenantry keys rotate``): both workers sign with
    it and publish it. Before: each kept signing with the key it loaded at start."""
    t = await enterprise(make_tenant)
    form = {
        "grant_type": "password",
        "username": t.admin_email,
        "password": PASSWORD,
        "tenant": t.tenant.slug,
    }

    def kid_of(r: httpx.Response) -> str | None:
        if r.status_code != 200:
            return None
        header: dict[str, Any] = jwt.get_unverified_header(r.json()["access_token"])
        return header.get("kid")

    before = {
        kid_of(r)
        for r in (await server.on_both("POST", "/api/v1/identity/token", data=form)).values()
    }
    assert len(before) == 1
    assert None not in before
    kid = await platform.keyring.rotate(platform.settings.auth.algorithm)
    assert kid not in before
    await server.until_both("POST", "/api/v1/identity/token", lambda r: kid_of(r) == kid, data=form)
    await server.until_both(
        "GET",
        "/.well-known/jwks.json",
        lambda r: kid in {k["kid"] for k in r.json()["keys"]},
    )


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, Counter[str]]]:
    """An HTTP endpoint on 127.0.0.1 counting deliveries per message id."""
    import orjson

    got: Counter[str] = Counter()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = orjson.loads(await reader.readexactly(length))
            got[str(body["id"])] += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", got
    finally:
        srv.close()
        await srv.wait_closed()


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_outbox_messages_are_delivered_once(server: Server, make_tenant: MakeTenant) -> None:
    t = await enterprise(make_tenant)
    count = 24
    async with (
        webhook_receiver() as (url, got),
        httpx.AsyncClient(base_url=server.base, timeout=10) as http,
    ):
        r = await http.post(
            "/api/v1/notifications/webhooks",
            headers=t.auth,
            json={"url": url, "events": ["ledger.TransactionPosted.v1"]},
        )
        assert r.status_code == 201, r.text
        accounts = (await http.get("/api/v1/ledger/accounts?limit=50", headers=t.auth)).json()
        ids = {a["code"]: a["id"] for a in accounts["items"]}
        body = {
            "description": "two workers",
            "entries": [
                {"account_id": ids["1000"], "direction": "debit", "amount": 100},
                {"account_id": ids["3000"], "direction": "credit", "amount": 100},
            ],
        }
        posted = await server.alternate(
            "POST",
            "/api/v1/ledger/transactions",
            count,
            headers=t.auth,
            json=body,
            each=lambda: {"Idempotency-Key": uuid4().hex},
        )
        assert {r.status_code for _, r in posted} == {201}, [r.text for _, r in posted][:3]
        assert len({w for w, _ in posted}) == 2

        async def all_delivered() -> bool:
            return sum(got.values()) >= count

        await wait_for(all_delivered, 30, f"{count} webhook deliveries (got {len(got)})")
        await asyncio.sleep(1.0)  # a duplicate would arrive now
    assert len(got) == count, got
    assert set(got.values()) == {1}, got


async def test_jobs_run_once(server: Server, make_tenant: MakeTenant) -> None:
    t = await enterprise(make_tenant)
    made = await server.alternate(
        "POST",
        "/api/v1/exports",
        6,
        headers=t.auth,
        json={"source": "ledger.accounts", "format": "csv"},
    )
    assert {r.status_code for _, r in made} == {202}, [r.text for _, r in made][:3]
    ids = [r.json()["id"] for _, r in made]
    done: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:

        async def finished() -> bool:
            for i in ids:
                if i not in done:
                    e = (await http.get(f"/api/v1/exports/{i}", headers=t.auth)).json()
                    if e["status"] in ("succeeded", "failed", "cancelled"):
                        done[i] = e
            return len(done) == len(ids)

        await wait_for(finished, 30, "the exports")
    assert {e["status"] for e in done.values()} == {"succeeded"}, done
    assert {e["attempts"] for e in done.values()} == {1}, done


async def test_a_crashed_saga_is_resumed_once_by_one_worker(
    server: Server, settings: Settings, platform: Platform, tmp_path: Path
) -> None:
    """``tenants create`` killed before its last step; both workers' resumers (every 0.5 s,
    ``saga_stale_s`` 1) race for it: one takes it and completes it, and no step runs twice."""
    point = "do:welcome"
    env = {**process_env(settings), "TENANTRY_MESSAGING__SAGA_STALE_S": str(SAGA_STALE_S)}
    await kill_at(env, IsolationMode.SHARED, point, tmp_path)
    slug = slug_for(IsolationMode.SHARED, point)
    workers = set(await server.on_both("GET", "/healthz"))

    async def saga() -> Any:
        async with admin_connection(platform.db, as_owner=False) as conn:
            return await conn.fetchrow(
                "SELECT status, owner, log FROM tenantry.sagas WHERE data->>'slug' = $1", slug
            )

    async def completed() -> bool:
        row = await saga()
        return row is not None and row["status"] == "completed"

    await wait_for(completed, 20, f"the onboarding of {slug} to be resumed")
    row = await saga()
    assert row["owner"].rpartition(":")[2] in workers, (row["owner"], workers)
    log = row["log"] if isinstance(row["log"], list) else json.loads(row["log"])
    events = Counter((e["step"], e["event"]) for e in log)
    assert events[("*", "completed")] == 1, log
    assert all(n == 1 for (_, event), n in events.items() if event == "done"), log
    assert events[("welcome", "started")] == 2, log  # the killed run's, and the resumer's


# -- shutdown ----------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_in_flight_requests_and_exits_0(
    settings: Settings,
    make_tenant: MakeTenant,
    tmp_path: Path,
    workers: int,
) -> None:
    """Before: one process re-raised SIGTERM after uvicorn's shutdown (exit -15, the job
    worker not stopped, the platform not closed)."""
    if workers > 1:
        await require_redis()
    t = await make_tenant()
    cfg = write_config(tmp_path / "t.toml", settings, redis=workers > 1)
    env = {**process_env(settings), "TENANTRY_CONFIG": str(cfg)}
    proc, _, port = await start_serve(env, workers, tmp_path / "serve.log")
    try:
        body = (
            f"grant_type=password&username={t.admin_email.replace('@', '%40')}"
            f"&password={PASSWORD}&tenant={t.tenant.slug}"
        ).encode()
        head = (
            "POST /api/v1/identity/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + body[:10])  # the request has started; its body is not all there
        await writer.drain()
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)

        async def refused() -> bool:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return True
            w.close()
            return False

        await wait_for(refused, 5, "new connections to be refused")
        assert proc.poll() is None, "exited with a request in flight"
        writer.write(body[10:])
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert b"access_token" in answer
        rc = await asyncio.to_thread(proc.wait, 30)
        assert rc == 0, f"exit {rc}: {tail(tmp_path / 'serve.log')}"
    finally:
        if proc.poll() is None:
            kill(proc)
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        raise AssertionError("still accepting after exit")
