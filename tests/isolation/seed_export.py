"""Export rows (exports, jobs, job_schedules) through the exports API."""

from __future__ import annotations

import httpx

from tests.conftest import TenantFixture


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await client.post(
        "/api/v1/exports", headers=tenant.auth, json={"source": "exports.history", "format": "csv"}
    )
    assert r.status_code == 202, r.text
    r = await client.post(
        "/api/v1/exports/schedules",
        headers=tenant.auth,
        json={"source": "exports.history", "format": "csv", "cron": "0 6 * * 1"},
    )
    assert r.status_code == 201, r.text
