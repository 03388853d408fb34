"""The kernel's tests use the fixtures of ``tenantry.testing.plugin`` (loaded by the root
conftest.py): a real PostgreSQL, a database per test module copied from a migrated template,
a started platform, an in-process client, ``make_tenant``. The helpers are re-exported here
for the tests that import them from ``tests.conftest``."""

from __future__ import annotations

from tenantry.testing import (
    PASSWORD,
    RUN,
    MakeTenant,
    TenantFixture,
    asgi_client,
    get_token,
    prepared_platform,
    tenant_maker,
)

__all__ = [
    "PASSWORD",
    "RUN",
    "MakeTenant",
    "TenantFixture",
    "asgi_client",
    "get_token",
    "prepared_platform",
    "tenant_maker",
]
