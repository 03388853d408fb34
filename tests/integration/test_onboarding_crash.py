"""A crashed onboarding never bricks start-up, and leaves its slug complete or reusable.

``tenantry tenants create`` runs as a real process and is killed (SIGKILL) at every point of
the onboarding saga (before each step's action and after it, before its state is saved; the
saga's test-only pause point ``TENANTRY_TEST_PAUSE_AT``, kernel/messaging/saga.py) in every
isolation mode. Then ``tenantry serve`` must start (readiness on a free port) although the
catalog holds tenants still ``provisioning`` (a database tenant without its database...),
resume the stale sagas itself, and leave every slug either complete (the first password
works) or free: created again with the same e-mail, the new password works and the first
one does not. The fast tests below check the same classes in-process: start-up and every
maintenance loop skip a tenant still being provisioned, and a compensated onboarding
removes the admin login it created (and only that one).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tenantry.kernel.config import Settings
from tenantry.kernel.db.privileged import admin_connection, platform_unit_of_work_as
from tenantry.kernel.messaging import dead
from tenantry.kernel.messaging.saga import PAUSE_AT_ENV, PAUSE_FILE_ENV
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode, Tenant, TenantStatus
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tests.cli import EXE, database_toml, process_env
from tests.conftest import PASSWORD, RUN, MakeTenant

STEPS = ["record", "storage", "chart_of_accounts", "admin", "activate", "welcome"]
#: Every pause point: before each action, and after it (done, not yet recorded).
POINTS = [f"{when}:{step}" for step in STEPS for when in ("do", "done")]
#: Where a kill leaves a tenant that resumes to the end: the admin step was recorded done.
#: Before that the admin password (kept in memory only) is lost, so the saga compensates.
COMPLETES = {"do:activate", "done:activate", "do:welcome", "done:welcome"}
FIRST, SECOND = "first-password-1", "second-password-2"
CONCURRENCY = 4  # CLI processes started at once (2 shared cores)
Popen = subprocess.Popen[bytes]


class Crash(BaseException):
    """Stops a saga where it stands, like a killed process (no compensation runs)."""


class Injected(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(path: Path, settings: Settings) -> Path:
    path.write_text(
        database_toml(settings, pool_max=6)
        + """
[messaging]
saga_stale_s = 1.0

[ratelimit]
anonymous_rate_per_s = 1000
anonymous_burst = 1000
"""
    )
    return path


def slug_for(mode: IsolationMode, point: str) -> str:
    when, step = point.split(":")
    return f"oc{RUN}-{mode.value[:2]}-{when}-{step.replace('_', '')[:6]}"


def spawn_create(env: dict[str, str], mode: IsolationMode, point: str, marker: Path) -> Popen:
    slug = slug_for(mode, point)
    return subprocess.Popen(
        [
            EXE,
            "tenants",
            "create",
            slug,
            "--name",
            f"Crash {point}",
            "--isolation",
            mode.value,
            "--admin-email",
            f"admin@{slug}.test",
            "--admin-password",
            FIRST,
        ],
        env={**env, PAUSE_AT_ENV: point, PAUSE_FILE_ENV: str(marker)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def spawn_serve(env: dict[str, str], port: int, log: Path) -> Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [EXE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def kill(proc: Popen) -> bytes:
    """SIGKILL and reap; the process's stderr (if piped)."""
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=10)
    return err or b""


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def stop_server(proc: Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def kill_at(env: dict[str, str], mode: IsolationMode, point: str, tmp: Path) -> None:
    """Run ``tenants create`` until it pauses at ``point``, then SIGKILL it."""
    marker = tmp / f"{slug_for(mode, point)}.paused"
    proc = spawn_create(env, mode, point, marker)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(
                    f"{point}: the CLI ended (rc {proc.returncode}) before pausing: "
                    f"{kill(proc).decode(errors='replace')}"
                )
            assert time.monotonic() < deadline, f"{point}: never paused"
            await asyncio.sleep(0.05)
    finally:
        kill(proc)


async def start_server(env: dict[str, str], log: Path) -> tuple[Popen, str]:
    """``tenantry serve`` on a free port, once /readyz answers 200."""
    port = free_port()
    proc = spawn_serve(env, port, log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 45
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited (rc {proc.returncode}): {tail(log)}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                kill(proc)
                raise AssertionError(f"serve never became ready: {tail(log)}")
            await asyncio.sleep(0.2)


async def open_sagas(platform: Platform, slugs: list[str]) -> list[str]:
    async with admin_connection(platform.db, as_owner=False) as conn:
        rows = await conn.fetch(
            "SELECT data->>'slug' AS slug FROM tenantry.sagas"
            " WHERE data->>'slug' = ANY($1::text[]) AND status IN ('running', 'compensating')",
            slugs,
        )
    return sorted(r["slug"] for r in rows)


async def logins(platform: Platform, email: str) -> int:
    async with admin_connection(platform.db, as_owner=False) as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM tenantry.users WHERE lower(email) = $1", email
            )
        )


async def store_exists(platform: Platform, mode: IsolationMode, slug: str) -> bool:
    async with admin_connection(platform.db, as_owner=False) as conn:
        if mode is IsolationMode.DATABASE:
            q = "SELECT count(*) FROM pg_database WHERE datname = $1"
            return bool(await conn.fetchval(q, "tenantry_t_" + slug.replace("-", "_")))
        if mode is IsolationMode.SCHEMA:
            q = "SELECT count(*) FROM pg_namespace WHERE nspname = $1"
            return bool(await conn.fetchval(q, "tenant_" + slug.replace("-", "_")))
    return False


async def token_status(http: httpx.AsyncClient, slug: str, password: str) -> int:
    r = await http.post(
        "/api/v1/identity/token",
        data={
            "grant_type": "password",
            "username": f"admin@{slug}.test",
            "password": password,
            "tenant": slug,
        },
    )
    return r.status_code


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(IsolationMode), ids=lambda m: m.value)
async def test_kill_at_every_step_then_serve_starts_and_slugs_are_complete_or_reusable(
    platform: Platform, settings: Settings, tmp_path: Path, mode: IsolationMode
) -> None:
    env = {
        **process_env(settings),
        "TENANTRY_CONFIG": str(write_config(tmp_path / "tenantry.toml", settings)),
    }
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(point: str) -> None:
        async with gate:
            await kill_at(env, mode, point, tmp_path)

    await asyncio.gather(*(one(p) for p in POINTS))
    slugs = [slug_for(mode, p) for p in POINTS]
    leftovers = [t for t in await platform.catalog.all() if t.slug in slugs]
    assert leftovers, "the kills left nothing to recover from"
    assert any(t.status is TenantStatus.PROVISIONING for t in leftovers)

    server, base = await start_server(env, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 60
        while still := await open_sagas(platform, slugs):
            assert time.monotonic() < deadline, f"serve did not resume: {still}"
            await asyncio.sleep(0.25)
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.get("/readyz")).status_code == 200
            for point, slug in zip(POINTS, slugs, strict=True):
                tenant = await platform.catalog.by_slug(slug)
                email = f"admin@{slug}.test"
                if point in COMPLETES:
                    assert tenant is not None, f"{point}: resumed tenant missing"
                    assert tenant.status is TenantStatus.ACTIVE, point
                    assert await token_status(http, slug, FIRST) == 200, point
                    continue
                assert tenant is None, f"{point}: {tenant} left behind"
                assert await logins(platform, email) == 0, f"{point}: the admin login stayed"
                assert not await store_exists(platform, mode, slug), f"{point}: store stayed"
                await platform.provisioner.create(
                    ProvisionRequest(
                        slug,
                        "Again",
                        mode,
                        options={"admin_email": email, "admin_password": SECOND},
                    )
                )
                assert await token_status(http, slug, SECOND) == 200, point
                assert await token_status(http, slug, FIRST) == 401, point
    finally:
        stop_server(server)
    assert "does not exist" not in tail(tmp_path / "serve.log")


# -- the same classes, in-process (fast) -----------------------------------------------------
@pytest.fixture
async def crashed(platform: Platform) -> AsyncIterator[Tenant]:
    """A database tenant left ``provisioning`` without its database, as a kill -9 while the
    database was being created leaves it; compensated afterwards."""
    slug = f"oc{RUN}-stuck"

    async def crash(_kind: str, where: str) -> None:
        if where == "do:storage":
            raise Crash

    platform.sagas.inject = crash
    try:
        with pytest.raises(Crash):
            await platform.provisioner.create(
                ProvisionRequest(
                    slug,
                    "Stuck",
                    IsolationMode.DATABASE,
                    options={"admin_email": f"a@{slug}.test", "admin_password": PASSWORD},
                )
            )
    finally:
        platform.sagas.inject = None
    tenant = await platform.catalog.by_slug(slug)
    assert tenant is not None
    assert tenant.status is TenantStatus.PROVISIONING
    assert not await store_exists(platform, IsolationMode.DATABASE, slug)
    yield tenant
    platform.sagas.stale_s = 0.2
    try:
        await asyncio.sleep(0.3)
        await platform.sagas.resume_stale()
    finally:
        platform.sagas.stale_s = platform.messaging.settings.saga_stale_s
    assert await platform.catalog.by_slug(slug) is None


async def test_start_up_and_maintenance_skip_a_tenant_still_provisioning(
    platform: Platform, client: httpx.AsyncClient, crashed: Tenant
) -> None:
    assert crashed.id not in {t.id for t in await platform.catalog.ready()}
    assert await platform.check() == []  # the start-up self-check
    report = await platform.prepare()  # migrations (`serve --migrate`, `tenantry migrate`)
    assert report.ok, report.failed
    audit = next(m for m in platform.modules if m.name == "audit")
    await audit.ensure_partitions(platform)  # type: ignore[attr-defined]
    assert crashed.id not in {t.id for t in await platform.jobs._tenants()}
    assert crashed.id not in {t.id for t in await platform.messaging.relay._all_tenants()}
    await dead.list_dead(platform.db, platform.catalog)
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text


async def test_a_compensated_onboarding_removes_the_admin_login_it_created(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    slug = f"oc{RUN}-relogin"
    email = f"admin@{slug}.test"
    # Someone who already has a login (a member of another tenant) is named admin too.
    other = f"oc{RUN}-other"
    veteran = f"veteran@{other}.test"
    await platform.provisioner.create(
        ProvisionRequest(other, "Other", options={"admin_email": veteran, "admin_password": FIRST})
    )

    async def fail(_kind: str, where: str) -> None:
        if where == "do:activate":
            raise Injected("after the admin step")

    for admin in (email, veteran):
        platform.sagas.inject = fail
        try:
            with pytest.raises(Injected):
                await platform.provisioner.create(
                    ProvisionRequest(
                        slug,
                        "Relogin",
                        IsolationMode.SCHEMA,
                        options={"admin_email": admin, "admin_password": FIRST},
                    )
                )
        finally:
            platform.sagas.inject = None
    assert await logins(platform, email) == 0  # created by the failed attempt: removed
    assert await logins(platform, veteran) == 1  # existed before: kept
    await platform.provisioner.create(
        ProvisionRequest(
            slug,
            "Relogin",
            IsolationMode.SCHEMA,
            options={"admin_email": email, "admin_password": SECOND},
        )
    )

    async def status(user: str, password: str, tenant: str) -> int:
        form = {"grant_type": "password", "username": user, "password": password}
        r = await client.post("/api/v1/identity/token", data={**form, "tenant": tenant})
        return r.status_code

    assert await status(email, SECOND, slug) == 200
    assert await status(email, FIRST, slug) == 401
    assert await status(veteran, FIRST, other) == 200


async def test_forgetting_a_login_needs_the_platform_scope(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    """The app role's only way to delete a login refuses a tenant-scoped caller (it would see
    only that tenant's memberships through RLS)."""
    tenant = (await make_tenant()).tenant
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with platform_unit_of_work_as(platform.db, tenant) as uow:
            await uow.fetchval(
                "SELECT tenantry.identity_forget_onboarding_login($1, $2)",
                uuid.uuid4(),
                tenant.id,
            )
    assert os.environ.get(PAUSE_AT_ENV) is None  # the pause point is inert in tests
