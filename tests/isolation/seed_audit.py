"""Audit rows: identity's changes are audited, so a member added through the API leaves a
record (and the chain head) in the tenant's store."""

from __future__ import annotations

import httpx

from tests.conftest import TenantFixture


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await client.get("/api/v1/audit/events?limit=1", headers=tenant.auth)
    assert r.status_code == 200, r.text
    assert r.json()["items"], "identity changes should have left audit records"
