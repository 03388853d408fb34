"""Identity rows: roles (tenant store, seeded at provisioning), memberships, API clients."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, TenantFixture


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
