"""Identity's startup object and HTTP routes (``/api/v1/identity``)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from tenantry.capabilities import entitlements
from tenantry.capabilities.pagination import ListQuery, list_query, search_query
from tenantry.kernel.auth.actions import tenant_grants
from tenantry.kernel.auth.clients import ClientIssuer
from tenantry.kernel.errors import BadRequest, Unauthorized
from tenantry.kernel.http.deps import principal, require
from tenantry.kernel.http.openapi import NOT_BLANK, documents, problems_extra
from tenantry.kernel.http.responses import JsonResponse
from tenantry.kernel.modules import Module
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.context import Principal, require_tenant
from tenantry.modules.identity.application.onboarding import OPTIONS as ONBOARDING_OPTIONS
from tenantry.modules.identity.application.onboarding import admin_step
from tenantry.modules.identity.application.services import IdentityService
from tenantry.modules.identity.domain.model import (
    EMAIL_RE,
    MIN_PASSWORD,
    ROLE_RE,
    ApiClient,
    Member,
)
from tenantry.modules.identity.infrastructure.hashing import (
    Argon2PasswordHasher,
    client_secret_matches,
    hash_client_secret,
)
from tenantry.modules.identity.infrastructure.repository import SqlIdentityRepository
from tenantry.modules.identity.infrastructure.sql import MEMBER_FIELDS

ADMIN = "identity:admin"


class Strict(BaseModel):
    """Request bodies reject unknown fields: a body can never carry ``tenant_id``."""

    model_config = ConfigDict(extra="forbid")


RoleName = Annotated[str, Field(pattern=ROLE_RE.pattern, max_length=63)]


class NewUser(Strict):
    email: str = Field(max_length=320, pattern=EMAIL_RE.pattern)
    password: str | None = Field(default=None, min_length=MIN_PASSWORD, max_length=1024)
    roles: list[RoleName] = Field(default_factory=list, max_length=50)


class RoleBody(Strict):
    actions: list[str] = Field(default_factory=list, max_length=200)
    description: str = Field(default="", max_length=500)


class NewRole(RoleBody):
    name: RoleName


class NewClient(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK)
    roles: list[RoleName] = Field(default_factory=list, max_length=50)


def _member(m: Member) -> dict[str, Any]:
    return {
        "id": str(m.user_id),
        "email": m.email,
        "roles": m.roles,
        "status": m.status.value,
        "created_at": m.created_at.isoformat(),
    }


def _client(c: ApiClient) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "client_id": c.client_id,
        "name": c.name,
        "roles": c.roles,
        "status": c.status.value,
        "created_at": c.created_at.isoformat(),
    }


def _basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, pw = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return user, pw


def _token_form(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The token form as it is checked: the fields each grant type needs (a missing one is
    400 ``invalid_request``; ``client_credentials`` may authenticate by HTTP Basic instead)."""
    text = {"type": "string", "maxLength": 1024}
    either: dict[str, Any] = {
        "oneOf": [
            {
                "type": "object",
                "title": "password grant",
                "properties": {
                    "grant_type": {"const": "password"},
                    "username": {**text, "minLength": 1},
                    "password": {**text, "minLength": 1},
                    "tenant": {**text, "minLength": 1},
                    "client_id": text,
                    "client_secret": text,
                },
                "required": ["grant_type", "username", "password", "tenant"],
            },
            {
                "type": "object",
                "title": "client_credentials grant",
                "properties": {
                    "grant_type": {"const": "client_credentials"},
                    "client_id": text,
                    "client_secret": text,
                    "username": text,
                    "password": text,
                    "tenant": text,
                },
                "required": ["grant_type"],
            },
        ]
    }
    content = operation.get("requestBody", {}).get("content", {})
    form = content.get("application/x-www-form-urlencoded")
    if form is not None:
        form["schema"] = either


def _role_actions(permissions: Mapping[str, str]) -> Any:
    """A role's ``actions`` as an enum of what a tenant may grant (``tenant_grants``)."""

    def rewrite(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        ref = body.get("schema", {}).get("$ref", "")
        target = schemas.get(ref.rsplit("/", 1)[-1]) if ref else None
        if target is not None and "actions" in target.get("properties", {}):
            target["properties"]["actions"]["items"] = {"enum": tenant_grants(permissions)}

    return rewrite


def build_router(service: IdentityService, permissions: Mapping[str, str]) -> APIRouter:
    router = APIRouter(tags=["identity"])

    @router.post("/token", summary="OAuth2 token endpoint (password, client_credentials)")
    @documents(_token_form)
    async def token(
        request: Request,
        grant_type: Annotated[str, Form()],
        username: Annotated[str | None, Form()] = None,
        password: Annotated[str | None, Form()] = None,
        tenant: Annotated[str | None, Form()] = None,
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form()] = None,
    ) -> JsonResponse:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if grant_type == "password":
            if not username or password is None or not tenant:
                raise BadRequest(
                    "password grant needs username, password and tenant", error="invalid_request"
                )
            result = await service.password_grant(username, password, tenant)
        elif grant_type == "client_credentials":
            basic = _basic_auth(request)
            cid, secret = basic if basic else (client_id or "", client_secret or "")
            if not cid or not secret:
                raise Unauthorized("client authentication failed", error="invalid_client")
            result = await service.client_credentials_grant(cid, secret)
        else:
            raise BadRequest(
                f"unsupported grant_type {grant_type!r}", error="unsupported_grant_type"
            )
        return JsonResponse(result.as_dict(), headers=headers)

    @router.get("/me")
    async def me(p: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
        t = require_tenant()
        return {
            "subject": p.subject,
            "kind": p.kind,
            "tenant": {"id": str(t.id), "slug": t.slug},
            "roles": sorted(p.roles),
            "scopes": sorted(p.scopes),
        }

    @router.get("/me/tenants")
    async def my_tenants(p: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
        if p.kind != "user":
            return {"items": []}
        return {"items": await service.repo.my_tenants(UUID(p.subject))}

    async def active_members() -> int:
        return await service.repo.member_count(require_tenant())

    @router.post(
        "/users",
        status_code=201,
        openapi_extra=problems_extra(404, 409),
        dependencies=[Depends(entitlements.require("max_users", usage=active_members))],
    )
    async def create_user(
        body: NewUser, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        tenant = require_tenant()
        user_id, created = await service.add_member(tenant, body.email, body.password, body.roles)
        return {
            "id": str(user_id),
            "email": body.email.strip().lower(),
            "roles": sorted(set(body.roles)),
            "status": "active",
            "new_login": created,
        }

    @router.get("/users", summary="Members: ?filter=&sort=&limit=&cursor= (email, status, ...)")
    async def list_users(
        _: Annotated[Principal, Depends(require(ADMIN))],
        q: Annotated[ListQuery, Depends(list_query(MEMBER_FIELDS))],
    ) -> dict[str, Any]:
        items, nxt = await service.repo.members(require_tenant(), q)
        return {"items": [_member(m) for m in items], "next_cursor": nxt}

    @router.post("/users/search", summary="Members, with the filter document in the body")
    async def search_users(
        _: Annotated[Principal, Depends(require(ADMIN))],
        q: Annotated[ListQuery, Depends(search_query(MEMBER_FIELDS))],
    ) -> dict[str, Any]:
        items, nxt = await service.repo.members(require_tenant(), q)
        return {"items": [_member(m) for m in items], "next_cursor": nxt}

    @router.post("/users/{user_id:uuid}/disable", openapi_extra=problems_extra(409))
    async def disable_user(
        user_id: UUID, p: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        """Disable the user's membership (their tokens stop working within a second); not
        your own (409)."""
        await service.set_member_status(require_tenant(), user_id, "disabled", by=p.subject)
        return {"id": str(user_id), "status": "disabled"}

    @router.delete("/users/{user_id:uuid}", status_code=204, openapi_extra=problems_extra(409))
    async def remove_user(user_id: UUID, p: Annotated[Principal, Depends(require(ADMIN))]) -> None:
        """Remove the user from this tenant (their tokens stop working within a second)."""
        await service.remove_member(require_tenant(), user_id, p.subject)

    @router.post("/users/{user_id:uuid}/enable")
    async def enable_user(
        user_id: UUID, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        await service.set_member_status(require_tenant(), user_id, "active")
        return {"id": str(user_id), "status": "active"}

    @router.post("/clients", status_code=201, openapi_extra=problems_extra(404))
    async def create_client(
        body: NewClient, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        client, secret = await service.create_client(require_tenant(), body.name, body.roles)
        return {**_client(client), "client_secret": secret}

    @router.get("/clients")
    async def list_clients(_: Annotated[Principal, Depends(require(ADMIN))]) -> dict[str, Any]:
        return {"items": [_client(c) for c in await service.repo.clients(require_tenant())]}

    @router.post("/clients/{id_:uuid}/disable")
    async def disable_client(
        id_: UUID, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        """Disable the API client (its tokens stop working within a second)."""
        await service.set_client_status(require_tenant(), id_, "disabled")
        return {"id": str(id_), "status": "disabled"}

    @router.get("/roles")
    async def list_roles(_: Annotated[Principal, Depends(require(ADMIN))]) -> dict[str, Any]:
        return {"items": await service.repo.roles(require_tenant())}

    @router.post("/roles", status_code=201, openapi_extra=problems_extra(409))
    @documents(_role_actions(permissions))
    async def create_role(
        body: NewRole, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        await service.save_role(
            require_tenant(), body.name, body.actions, body.description, permissions, create=True
        )
        return {
            "name": body.name,
            "actions": sorted(set(body.actions)),
            "description": body.description,
        }

    @router.put("/roles/{name}", openapi_extra=problems_extra(409))
    @documents(_role_actions(permissions))
    async def replace_role(
        name: Annotated[str, Path(pattern=ROLE_RE.pattern, max_length=63)],
        body: RoleBody,
        _: Annotated[Principal, Depends(require(ADMIN))],
    ) -> dict[str, Any]:
        await service.save_role(
            require_tenant(), name, body.actions, body.description, permissions, create=False
        )
        return {"name": name, "actions": sorted(set(body.actions)), "description": body.description}

    @router.delete("/roles/{name}", status_code=204, openapi_extra=problems_extra(409))
    async def delete_role(
        name: Annotated[str, Path(pattern=ROLE_RE.pattern, max_length=63)],
        _: Annotated[Principal, Depends(require(ADMIN))],
    ) -> None:
        await service.delete_role(require_tenant(), name)

    return router


class IdentityModule(Module):
    name: ClassVar[str] = "identity"
    depends_on: ClassVar[tuple[str, ...]] = ("audit",)
    migrations: ClassVar[str | None] = "tenantry.modules.identity.migrations"
    permissions: ClassVar[dict[str, str]] = {
        ADMIN: "manage the tenant's users, API clients and roles"
    }
    onboarding_options = ONBOARDING_OPTIONS

    def __init__(self) -> None:
        self.service: IdentityService | None = None

    def setup(self, registrar: Registrar) -> None:
        # UserAddedToTenant / ApiClientCreated go to the outbox in the change's transaction
        # (notifications consumes them; "identity -> notifications" is usually "bus").
        repo = SqlIdentityRepository(registrar.db, registrar.catalog, registrar.dispatcher.publish)
        service = IdentityService(
            repo,
            Argon2PasswordHasher(),
            registrar.tokens,
            registrar.expand_actions,
            hash_client_secret,
            client_secret_matches,
            registrar.is_operator_tenant,
        )
        self.service = service
        registrar.provide(ClientIssuer, service)
        registrar.include_router(build_router(service, registrar.permissions))
        registrar.add_credential_path("/token")

        registrar.add_onboarding_step(admin_step(service, lambda: registrar.default_roles))
        registrar.set_principal_source(repo.principal_active)
        registrar.check_provision_request(service.check_onboarding_request)


module = IdentityModule()
