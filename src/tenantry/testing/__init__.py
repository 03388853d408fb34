"""Test support for the platform and for modules: a real PostgreSQL, a database per test
module copied from a migrated template, a started platform and an in-process HTTP client.

The fixtures are a pytest plugin, ``tenantry.testing.plugin``: load it from the ``conftest.py``
at the root of your project (``pytest_plugins = ["tenantry.testing.plugin"]``) and a module's
tests get ``platform``, ``client`` and ``make_tenant`` (see docs/modules.md, "Fast tests of a
service" and "Tests"). PostgreSQL comes from ``TENANTRY_TEST_DATABASE_URL`` (any database URL
of a server where the user may create databases and roles) or, by default, from an embedded
server in a temporary folder, so the tests need nothing running. Needs the ``testing`` extra
(pytest, pytest-asyncio, httpx).

Why our own fixtures rather than a plugin from PyPI: the platform's databases (the migrated
template, one copy per test module, the tenants' own databases) and its start-up are the
platform's; no general plugin knows them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from tenantry.kernel.config import Settings, load_settings
from tenantry.kernel.db.dsn import with_database
from tenantry.kernel.db.privileged import admin_connection, admin_dsn
from tenantry.kernel.http.app import create_app
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode, Tenant
from tenantry.kernel.tenancy.provisioning import ProvisionRequest

#: This run's prefix of every database name (tenantry_test_<RUN>_...) and tenant slug.
RUN = secrets.token_hex(3)
#: The password of every tenant admin ``make_tenant`` creates.
PASSWORD = "correct-horse-battery"  # noqa: S105 (test tenants only)


def settings_for(server_url: str, database: str) -> Settings:
    """Settings of a test platform on ``database`` of the server at ``server_url``."""
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


async def drop_databases(admin_dsn: str, names: list[str]) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


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
    await drop_databases(admin_dsn(p.db, database="postgres"), [*tenant_dbs, p.db.main_database])


@contextlib.asynccontextmanager
async def asgi_client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling ``platform``'s app in process."""
    app = create_app(platform, manage_lifecycle=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@dataclass
class TenantFixture:
    """A tenant ``make_tenant`` created: its catalog row, its admin's email and token."""

    tenant: Tenant
    admin_email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeTenant = Callable[..., Awaitable[TenantFixture]]
_counter = iter(range(1, 1_000_000))


def tenant_maker(platform: Platform, client: httpx.AsyncClient) -> MakeTenant:
    """``make_tenant`` for any platform and its client: ``await make(isolation="shared",
    plan="free", **options)`` onboards a tenant (options as ``tenantry tenants create``
    takes them) and returns it with a token of its admin."""

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


def platform_of(client: httpx.AsyncClient) -> Platform:
    """The platform behind a client of ``asgi_client`` (its ASGI app keeps it in ``state``)."""
    app = client._transport.app  # type: ignore[attr-defined]
    platform: Platform = app.state.platform
    return platform


async def get_token(client: httpx.AsyncClient, username: str, password: str, tenant: str) -> str:
    """An access token by the password grant (asserts it is granted)."""
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


def cache_lookups(prefix: str) -> dict[str, float]:
    """This process's cache lookups of the read path ``prefix`` (``module:what``) so far, by
    result (``l1_hit``, ``hit``, ``miss``): the Prometheus counter the hit-rate SLOs read."""
    from tenantry.kernel.observability import metrics

    out: dict[str, float] = {"l1_hit": 0.0, "hit": 0.0, "miss": 0.0}
    for metric in metrics.CACHE_REQUESTS.collect():
        for s in metric.samples:
            if s.name.endswith("_total") and s.labels["prefix"] == prefix:
                out[s.labels["result"]] += s.value
    return out


def cache_hits(prefix: str) -> float:
    """Lookups of ``prefix`` served from the cache (its L1 or the shared level)."""
    c = cache_lookups(prefix)
    return c["l1_hit"] + c["hit"]


__all__ = [
    "PASSWORD",
    "RUN",
    "MakeTenant",
    "TenantFixture",
    # kernel/db/privileged is kernel-only; tests and a module's test helpers may use this
    "admin_connection",
    "asgi_client",
    "cache_hits",
    "cache_lookups",
    "drop_databases",
    "get_token",
    "platform_of",
    "prepared_platform",
    "settings_for",
    "tenant_maker",
]
