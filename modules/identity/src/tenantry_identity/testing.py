"""The module's isolation seeder (entry point ``tenantry.isolation_seeds``): gives a tenant a
row in each of identity's tables through the API. Roles are seeded at provisioning; this adds
an API client and a second member (a user, a membership). The platform's isolation suite runs
it for two tenants and attacks every table it filled."""

from __future__ import annotations

import httpx

from tenantry.testing import PASSWORD, TenantFixture


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await client.post(
        "/api/v1/identity/clients",
        headers=tenant.auth,
        json={"name": "isolation-probe", "roles": ["admin"]},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/identity/users",
        headers=tenant.auth,
        json={"email": f"member@{tenant.tenant.slug}.test", "password": PASSWORD, "roles": []},
    )
    assert r.status_code == 201, r.text
