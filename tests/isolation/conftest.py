"""The two isolation layers, one at a time.

The isolation tests take a ``layers`` fixture and run three ways:

- ``both``: the test module's platform as it runs in production (tenant filter + RLS);
- ``filter_only``: a second platform on a throwaway database of its own (never the shared
  test database) whose RLS policies are dropped (``Layers.isolate``: RLS disabled, policies
  dropped, in every store of that platform) before the attack, so only the application's
  tenant filter protects;
- ``rls_only``: the test module's platform with the tenant filter switched off by the test-only
  hook (``tenant_filter.switched_off``, from ``Layers.isolate`` to the end of the test), so
  only RLS protects. The tenants are set up before: the application's own INSERTs need the
  filter (repositories never write tenant_id), which is also why the HTTP-level tests
  (test_ledger_endpoints) run in the other two modes only.

``test_attack_sees_leaks_with_both_layers_off`` proves the attack can fail: with RLS dropped
and the filter off it must find leaks, so a mode cannot pass because the attack is blind.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tenantry.kernel.config import Settings
from tenantry.kernel.db import tenant_filter
from tenantry.kernel.db.dsn import database_of, with_database
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.db.rls import tenant_tables
from tenantry.kernel.platform import Platform
from tests.conftest import MakeTenant, asgi_client, prepared_platform, tenant_maker

MODES = ["both", "filter_only", "rls_only"]


@dataclass
class Layers:
    mode: str
    platform: Platform
    client: httpx.AsyncClient
    make_tenant: MakeTenant
    undo: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def rls(self) -> bool:
        return self.mode != "filter_only"

    async def isolate(self) -> None:
        """Take away the layer not under test (call it after the tenants are set up):
        ``filter_only`` drops RLS in every store of its throwaway platform; ``rls_only``
        switches the tenant filter off until the end of the test."""
        if self.mode == "filter_only":
            await drop_rls(self.platform)
        elif self.mode == "rls_only":
            self.undo.enter_context(tenant_filter.switched_off())


async def stores(platform: Platform) -> list[tuple[str, str | None]]:
    """(server, database) of every store of ``platform``: the main database and each
    database-mode tenant's own."""
    found: list[tuple[str, str | None]] = [("default", None)]
    for t in await platform.catalog.all():
        if t.database:
            found.append((t.server, t.database))
    return found


async def drop_rls(platform: Platform) -> None:
    """RLS off and the policies gone on every tenant-owned table of ``platform``'s stores
    (as the superuser; new tenants' stores get them again when provisioned)."""
    assert "_norls_" in platform.db.main_database, "never drop RLS in the shared test database"
    for server, database in await stores(platform):
        async with admin_connection(platform.db, server, database, as_owner=False) as conn:
            for t in await tenant_tables(conn):
                table = f'"{t.schema}"."{t.table}"'
                await conn.execute(
                    f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;"
                    f" ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
                    f" DROP POLICY IF EXISTS tenant_isolation ON {table};"
                    f" DROP POLICY IF EXISTS app_access ON {table}"
                )


@pytest.fixture(scope="module")
async def norls_platform(settings: Settings) -> AsyncIterator[Platform]:
    """A platform of its own on a throwaway database (``<test db>_norls_``), for runs that
    drop RLS. Built on first use, dropped with its tenant databases at the end."""
    url = settings.database.url
    assert url is not None
    own = settings.model_copy(deep=True)
    own.database.url = with_database(url, f"{database_of(url)}_norls_")
    own.database.pool_max = 4  # a second platform on the same server: keep its share small
    async with prepared_platform(own) as p:
        yield p


@pytest.fixture(scope="module")
async def norls_client(norls_platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(norls_platform) as c:
        yield c


@pytest.fixture(scope="module")
def norls(norls_platform: Platform, norls_client: httpx.AsyncClient) -> Layers:
    """The throwaway platform (RLS dropped by ``isolate``), filter on."""
    return Layers(
        "filter_only", norls_platform, norls_client, tenant_maker(norls_platform, norls_client)
    )


@pytest.fixture(params=MODES)
def layers(
    request: pytest.FixtureRequest,
    platform: Platform,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
) -> Iterator[Layers]:
    mode: str = request.param
    if mode == "filter_only":
        norls: Layers = request.getfixturevalue("norls")
        yield norls
    else:
        chosen = Layers(mode, platform, client, make_tenant)
        with chosen.undo:
            yield chosen
