"""Shared bench set-up: a migrated database (DATABASE_URL, default the local server's
``tenantry_bench``), a platform and a bench tenant."""

from __future__ import annotations

import os

from tenantry.kernel.config import Settings, load_settings
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode, Tenant
from tenantry.kernel.tenancy.provisioning import ProvisionRequest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/tenantry_bench"


def bench_settings(**overrides: object) -> Settings:
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    return load_settings(None, **overrides)


async def bench_platform(settings: Settings) -> tuple[Platform, Tenant]:
    platform = Platform.build(settings)
    report = await platform.prepare()
    assert report.ok, report.failed
    tenant = await platform.catalog.by_slug("bench")
    if tenant is None:
        res = await platform.provisioner.create(
            ProvisionRequest(
                "bench",
                "Bench",
                IsolationMode.SHARED,
                "free",
                options={"admin_email": "bench@bench.test", "admin_password": "bench-password"},
            )
        )
        tenant = res.tenant
    return platform, tenant
