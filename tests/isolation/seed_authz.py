"""Authz rows: a tenant policy and a principal's attributes, through the policy API."""

from __future__ import annotations

import httpx

from tests.conftest import TenantFixture


async def seed(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await client.put(
        "/api/v1/authz/policies/isolation-probe",
        headers=tenant.auth,
        json={"effect": "deny", "actions": ["audit:read"], "roles": ["nobody"]},
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        "/api/v1/authz/subjects/isolation-probe/attributes",
        headers=tenant.auth,
        json={"department": "probe"},
    )
    assert r.status_code == 200, r.text
