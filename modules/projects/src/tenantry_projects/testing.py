"""The module's isolation seeder (entry point ``tenantry.isolation_seeds``): gives a tenant a
row in each of the module's tables, a project with a task, through the API. The platform's
isolation suite runs it for two tenants and attacks every table it filled."""

from __future__ import annotations

import uuid

import httpx

from tenantry.testing import TenantFixture


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    key = "S" + uuid.uuid4().hex[:6].upper()
    r = await client.post(
        "/api/v1/projects/projects", json={"key": key, "name": "Seeded"}, headers=tenant.auth
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/api/v1/projects/projects/{r.json()['id']}/tasks",
        json={"title": "Seeded task"},
        headers=tenant.auth,
    )
    assert r.status_code == 201, r.text
