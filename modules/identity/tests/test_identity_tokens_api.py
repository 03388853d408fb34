"""The token endpoint and every kind of bad token, against the real app and database."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import httpx
import jwt
import orjson
import pytest

from tenantry.kernel.auth.actions import PLATFORM_ADMIN
from tenantry.kernel.auth.keys import generate
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import TenantStatus
from tenantry.testing import PASSWORD, MakeTenant, get_token

ME = "/api/v1/identity/me"
TOKEN = "/api/v1/identity/token"


async def test_password_grant_gives_a_working_token(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r = await client.get(ME, headers=t.auth)
    assert r.status_code == 200
    body = r.json()
    assert body["tenant"]["slug"] == t.tenant.slug
    assert "identity:admin" in body["scopes"]
    claims = jwt.decode(t.token, options={"verify_signature": False})
    for claim in ("sub", "tenant_id", "roles", "scope", "iss", "aud", "exp", "iat", "jti"):
        assert claim in claims
    assert jwt.get_unverified_header(t.token)["alg"] == "EdDSA"


async def test_bad_credentials_all_look_the_same(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    other = await make_tenant()
    # a disabled member
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": "off@x.test", "password": PASSWORD, "roles": []},
    )
    assert r.status_code == 201
    r = await client.post(f"/api/v1/identity/users/{r.json()['id']}/disable", headers=t.auth)
    assert r.status_code == 200
    cases = [
        (t.admin_email, "wrong-password-123", t.tenant.slug),  # wrong password
        (t.admin_email, PASSWORD, "no-such-tenant"),  # unknown tenant
        (t.admin_email, PASSWORD, other.tenant.slug),  # not a member there
        ("nobody@x.test", PASSWORD, t.tenant.slug),  # unknown user
        ("off@x.test", PASSWORD, t.tenant.slug),  # disabled user
    ]
    bodies = []
    for username, password, tenant in cases:
        r = await client.post(
            TOKEN,
            data={
                "grant_type": "password",
                "username": username,
                "password": password,
                "tenant": tenant,
            },
        )
        assert r.status_code == 401, (username, tenant, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        b = r.json()
        bodies.append((b["title"], b["detail"], b["error"]))
    assert len(set(bodies)) == 1


async def test_token_endpoint_bad_requests(client: httpx.AsyncClient) -> None:
    r = await client.post(TOKEN, data={"grant_type": "magic"})
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"
    r = await client.post(TOKEN, data={"grant_type": "password", "username": "x"})
    assert r.status_code == 400
    r = await client.post(TOKEN, data={})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


def _forge(claims: dict[str, Any], key: Any, alg: str, kid: str) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


async def test_every_bad_token_is_refused(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    good = jwt.decode(t.token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(t.token)["kid"]
    _, foreign_pem, _ = generate("EdDSA")
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    foreign = load_pem_private_key(foreign_pem.encode(), None)
    real = (await platform.keyring.signing_key()).private_key
    now = int(time.time())
    header = base64.urlsafe_b64encode(orjson.dumps({"alg": "none", "kid": kid})).rstrip(b"=")
    payload = base64.urlsafe_b64encode(orjson.dumps(good)).rstrip(b"=")
    bad_tokens = {
        "bad signature": _forge(good, foreign, "EdDSA", kid),
        "alg none": (header + b"." + payload + b".").decode(),
        "unknown kid": _forge(good, real, "EdDSA", "no-such-kid"),
        "wrong aud": _forge({**good, "aud": "someone-else"}, real, "EdDSA", kid),
        "wrong iss": _forge({**good, "iss": "evil"}, real, "EdDSA", kid),
        "expired": _forge({**good, "exp": now - 3600, "iat": now - 7200}, real, "EdDSA", kid),
        "no tenant": _forge(
            {k: v for k, v in good.items() if k != "tenant_id"}, real, "EdDSA", kid
        ),
        "unknown tenant": _forge({**good, "tenant_id": str(uuid.uuid4())}, real, "EdDSA", kid),
        "hs256 with public key": jwt.encode(
            good, "secret-of-nobody-long-enough-32b", algorithm="HS256", headers={"kid": kid}
        ),
        "garbage": "not.a.token",
    }
    for name, token in bad_tokens.items():
        r = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (name, r.text)
        assert r.headers["content-type"] == "application/problem+json", name
    r = await client.get(ME, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    r = await client.get(ME)
    assert r.status_code == 401


async def test_suspended_tenant_tokens_are_refused(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    assert (await client.get(ME, headers=t.auth)).status_code == 200
    await platform.provisioner.set_status(t.tenant.slug, TenantStatus.SUSPENDED)
    r = await client.get(ME, headers=t.auth)
    assert r.status_code == 403
    assert r.json()["type"].endswith("/tenant-suspended")
    r = await client.post(
        TOKEN,
        data={
            "grant_type": "password",
            "username": t.admin_email,
            "password": PASSWORD,
            "tenant": t.tenant.slug,
        },
    )
    assert r.status_code == 401
    await platform.provisioner.set_status(t.tenant.slug, TenantStatus.ACTIVE)
    assert (await client.get(ME, headers=t.auth)).status_code == 200


async def test_key_rotation_keeps_old_tokens_valid(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    old_kid = jwt.get_unverified_header(t.token)["kid"]
    new_kid = await platform.keyring.rotate("EdDSA")
    assert new_kid != old_kid
    assert (await client.get(ME, headers=t.auth)).status_code == 200
    fresh = await get_token(client, t.admin_email, PASSWORD, t.tenant.slug)
    assert jwt.get_unverified_header(fresh)["kid"] == new_kid
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert {old_kid, new_kid} <= kids
    # A key retired longer ago than a token lives no longer verifies.
    async with admin_connection(platform.db) as conn:
        await conn.execute(
            "UPDATE tenantry.signing_keys SET retired_at = now() - interval '1 day' WHERE kid = $1",
            old_kid,
        )
    await platform.keyring.load()
    assert (await client.get(ME, headers=t.auth)).status_code == 401


async def test_rs256_keys_work_too(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    await platform.keyring.rotate("RS256")
    try:
        token = await get_token(client, t.admin_email, PASSWORD, t.tenant.slug)
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        r = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
    finally:
        await platform.keyring.rotate("EdDSA")


async def test_client_credentials(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    t = await make_tenant()
    r = await client.post(
        "/api/v1/identity/clients",
        headers=t.auth,
        json={"name": "billing-sync", "roles": ["admin"]},
    )
    assert r.status_code == 201, r.text
    c = r.json()
    listed = (await client.get("/api/v1/identity/clients", headers=t.auth)).json()["items"]
    assert [x["client_id"] for x in listed] == [c["client_id"]]
    assert "client_secret" not in listed[0]
    r = await client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": c["client_id"],
            "client_secret": c["client_secret"],
        },
    )
    assert r.status_code == 200, r.text
    me = await client.get(ME, headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["kind"] == "client"
    basic = base64.b64encode(f"{c['client_id']}:{c['client_secret']}".encode()).decode()
    r = await client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200
    r = await client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": c["client_id"],
            "client_secret": "nope",
        },
    )
    assert r.status_code == 401
    await client.post(f"/api/v1/identity/clients/{c['id']}/disable", headers=t.auth)
    r = await client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": c["client_id"],
            "client_secret": c["client_secret"],
        },
    )
    assert r.status_code == 401


async def test_one_person_in_two_tenants(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a = await make_tenant()
    b = await make_tenant("schema")
    for t in (a, b):
        r = await client.post(
            "/api/v1/identity/users",
            headers=t.auth,
            json={"email": "Both@X.test", "password": PASSWORD, "roles": []},
        )
        assert r.status_code == 201, r.text
    token_b = await get_token(client, "both@x.test", PASSWORD, b.tenant.slug)
    me = (await client.get(ME, headers={"Authorization": f"Bearer {token_b}"})).json()
    assert me["tenant"]["slug"] == b.tenant.slug
    mine = (
        await client.get(
            "/api/v1/identity/me/tenants", headers={"Authorization": f"Bearer {token_b}"}
        )
    ).json()["items"]
    assert {x["slug"] for x in mine} >= {a.tenant.slug, b.tenant.slug}
    r = await client.post(
        "/api/v1/identity/users", headers=a.auth, json={"email": "both@x.test", "roles": []}
    )
    assert r.status_code == 409


async def test_tenant_id_in_a_body_is_rejected(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a = await make_tenant()
    b = await make_tenant()
    r = await client.post(
        "/api/v1/identity/users",
        headers=a.auth,
        json={"email": "sneaky@x.test", "password": PASSWORD, "tenant_id": str(b.tenant.id)},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "tenant_id"


async def test_non_admin_is_forbidden_and_roles_are_checked(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": "plain@x.test", "password": PASSWORD, "roles": []},
    )
    assert r.status_code == 201
    token = await get_token(client, "plain@x.test", PASSWORD, t.tenant.slug)
    r = await client.get("/api/v1/identity/users", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert r.json()["required"] == "identity:admin"
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": "p2@x.test", "password": PASSWORD, "roles": ["czar"]},
    )
    assert r.status_code == 404  # a role this tenant does not have: as an unknown id
    assert r.json()["errors"][0]["field"] == "roles"
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": "p3@x.test", "password": "short", "roles": []},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "password"


async def test_users_list_paginates(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    t = await make_tenant()
    for i in range(5):
        await client.post(
            "/api/v1/identity/users",
            headers=t.auth,
            json={"email": f"u{i}@page.test", "password": PASSWORD},
        )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/api/v1/identity/users", headers=t.auth, params=params)).json()
        seen += [u["email"] for u in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen)
    assert len(seen) == 6


async def test_platform_admin_only_for_the_operator_tenant(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    from tenantry.kernel.tenancy.model import IsolationMode
    from tenantry.kernel.tenancy.provisioning import ProvisionRequest

    t = await make_tenant()
    me = (await client.get(ME, headers=t.auth)).json()
    assert PLATFORM_ADMIN not in me["scopes"]  # admin role is "*", yet not platform-wide
    op = platform.settings.tenancy.operator_tenant
    if await platform.catalog.by_slug(op) is None:
        await platform.provisioner.create(
            ProvisionRequest(
                op,
                "Operators",
                IsolationMode.SHARED,
                options={"admin_email": "root@operator.test", "admin_password": PASSWORD},
            )
        )
    token = await get_token(client, "root@operator.test", PASSWORD, op)
    me = (await client.get(ME, headers={"Authorization": f"Bearer {token}"})).json()
    assert PLATFORM_ADMIN in me["scopes"]


async def test_cached_verification_still_expires(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    """Verified tokens are cached; a cached token is refused once it expires."""
    from tenantry.kernel.auth.tokens import TokenError, TokenService

    t = await make_tenant()
    service = TokenService(
        platform.keyring, platform.settings.auth.model_copy(update={"leeway_s": 0})
    )
    claims = jwt.decode(t.token, options={"verify_signature": False})
    key = await platform.keyring.signing_key()
    short = jwt.encode(
        {**claims, "exp": int(time.time()) + 1},
        key.private_key,
        algorithm=key.alg,
        headers={"kid": key.kid},
    )
    assert (await service.verify(short)).subject == claims["sub"]
    assert (await service.verify(short)).subject == claims["sub"]  # from the cache
    await asyncio.sleep(1.3)
    with pytest.raises(TokenError, match="expired"):
        await service.verify(short)
