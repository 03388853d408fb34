"""Fixtures for observability tests: an app with routes that fail, an operator token."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import structlog
from fastapi import APIRouter

from tenantry.kernel.auth.clients import ClientIssuer
from tenantry.kernel.http.app import create_app
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tests.conftest import PASSWORD


class BoomError(RuntimeError):
    pass


class OtherError(ValueError):
    pass


def boom_router(platform: Platform) -> APIRouter:
    router = APIRouter()

    @router.get("/boom/{n}")
    async def boom(n: int) -> None:
        raise BoomError(f"boom number {n}")

    @router.get("/other")
    async def other() -> None:
        raise OtherError("something else")

    @router.get("/aborted")
    async def aborted() -> None:
        # Fails inside a tenant transaction: the error must still be recorded (elsewhere).
        async with platform.db.unit_of_work() as uow:
            await uow.execute("SELECT 1/0")

    @router.get("/ok")
    async def ok() -> dict[str, str]:
        return {"ok": "yes"}

    @router.get("/logs")
    async def log_inside() -> dict[str, str]:
        structlog.get_logger("tests").info("inside the handler")
        logging.getLogger("tests.stdlib").warning("stdlib inside the handler")
        return {"ok": "yes"}

    return router


@pytest.fixture(scope="module")
async def obs_client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(platform, manage_lifecycle=False)
    app.include_router(boom_router(platform), prefix="/test")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture(scope="module")
async def operator_auth(platform: Platform, client: httpx.AsyncClient) -> dict[str, str]:
    """A token of the operator tenant (created here unless another test did), through an API
    client of its own so it does not depend on who created the tenant."""
    slug = platform.settings.tenancy.operator_tenant
    tenant = await platform.catalog.by_slug(slug)
    if tenant is None:
        res = await platform.provisioner.create(
            ProvisionRequest(
                slug,
                "Operators",
                IsolationMode.SHARED,
                "free",
                # The admin the other operator-tenant tests log in as, whoever creates it.
                options={"admin_email": "root@operator.test", "admin_password": PASSWORD},
            )
        )
        tenant = res.tenant
    c, secret = await platform.use(ClientIssuer).create_client(tenant, "obs-tests", ["admin"])
    r = await client.post(
        "/api/v1/identity/token",
        data={
            "grant_type": "client_credentials",
            "client_id": c.client_id,
            "client_secret": secret,
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
