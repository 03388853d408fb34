"""The token request reads a login, its membership and its roles' actions in one statement
in the tenant's store (identity's service): with a role of the same name in two tenants, each
tenant's token carries its own role's actions only, and a login that is no member of a
tenant gets no token for it. Run with both layers, the tenant filter alone (RLS dropped) and
RLS alone (filter off): each layer alone keeps the other tenant's rows out of the statement.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import PASSWORD, TenantFixture
from tests.isolation.conftest import Layers

API = "/api/v1/identity"
ACTIONS = {"a": ["ledger:write"], "b": ["ledger:read"]}


async def token(client: httpx.AsyncClient, **data: str) -> httpx.Response:
    return await client.post(f"{API}/token", data=data)


def claims(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    out: dict[str, Any] = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    return out


@pytest.mark.parametrize(("mode_a", "mode_b"), [("shared", "shared"), ("schema", "shared")])
async def test_each_tenants_token_carries_its_own_roles_only(
    layers: Layers, mode_a: str, mode_b: str
) -> None:
    client = layers.client
    tenants: dict[str, TenantFixture] = {
        "a": await layers.make_tenant(mode_a),
        "b": await layers.make_tenant(mode_b),
    }
    person = f"p-{uuid.uuid4().hex[:8]}@example.test"
    only_a = f"a-{uuid.uuid4().hex[:8]}@example.test"
    secrets: dict[str, tuple[str, str]] = {}
    for name, t in tenants.items():
        r = await client.post(
            f"{API}/roles", headers=t.auth, json={"name": "clerk", "actions": ACTIONS[name]}
        )
        assert r.status_code == 201, r.text
        body = {
            "email": person,
            "roles": ["clerk"],
            **({"password": PASSWORD} if name == "a" else {}),
        }
        r = await client.post(f"{API}/users", headers=t.auth, json=body)
        assert r.status_code == 201, r.text
        r = await client.post(
            f"{API}/clients", headers=t.auth, json={"name": "c", "roles": ["clerk"]}
        )
        assert r.status_code == 201, r.text
        secrets[name] = (r.json()["client_id"], r.json()["client_secret"])
    r = await client.post(
        f"{API}/users",
        headers=tenants["a"].auth,
        json={"email": only_a, "password": PASSWORD, "roles": ["clerk"]},
    )
    assert r.status_code == 201, r.text
    await layers.isolate()

    for name, t in tenants.items():
        got = claims(
            await token(
                client,
                grant_type="password",
                username=person,
                password=PASSWORD,
                tenant=t.tenant.slug,
            )
        )
        assert got["tenant_id"] == str(t.tenant.id)
        assert got["scope"] == " ".join(ACTIONS[name]), (name, got)
        cid, secret = secrets[name]
        for _ in range(2):  # the second grant reads the client in its tenant's store
            got = claims(
                await token(
                    client, grant_type="client_credentials", client_id=cid, client_secret=secret
                )
            )
            assert got["tenant_id"] == str(t.tenant.id)
            assert got["scope"] == " ".join(ACTIONS[name]), (name, got)
    r = await token(
        client,
        grant_type="password",
        username=only_a,
        password=PASSWORD,
        tenant=tenants["b"].tenant.slug,
    )
    assert r.status_code == 401, r.text
    assert r.json()["detail"] == "invalid credentials"
