"""Identity's HTTP routes (``/api/v1/identity``): HTTP only. Each route parses and validates
its request, calls one application service method (``IdentityService``), and maps its result
or domain error to a response: the status, problem type and body of every ``IdentityError``
kind are decided here (``problem``), never by the service.

The same mapping is the edge for the kernel's other callers of identity: the command line
and tests creating API clients (``IdentityClients``, the ``ClientIssuer`` port), the
provisioner's check of the onboarding options and the onboarding saga's ``admin`` step
(``problems``), so they see the problems they always saw.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from tenantry.capabilities import entitlements
from tenantry.capabilities.pagination import ListQuery, list_query, search_query
from tenantry.kernel.auth.actions import (
    PlatformActionRefused,
    refuse_platform_grants,
    tenant_grants,
)
from tenantry.kernel.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ProblemError,
    Unauthorized,
    ValidationFailed,
)
from tenantry.kernel.http.deps import principal, require
from tenantry.kernel.http.openapi import NOT_BLANK, documents, problems_extra
from tenantry.kernel.http.responses import JsonResponse
from tenantry.kernel.tenancy.context import Principal, require_tenant
from tenantry.kernel.tenancy.model import Tenant
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry_identity.application.errors import (
    IdentityError,
    InvalidCredentials,
    PlatformGrantRefused,
)
from tenantry_identity.application.services import IdentityService, profile_of
from tenantry_identity.domain.model import (
    EMAIL_RE,
    MIN_PASSWORD,
    ROLE_RE,
    ApiClient,
)
from tenantry_identity.infrastructure.sql import MEMBER_FIELDS

ADMIN = "identity:admin"
#: IdentityError.kind -> the problem clients see (InvalidCredentials and PlatformGrantRefused
#: have their own, see ``problem``).
KINDS: dict[str, type[ProblemError]] = {
    "invalid": ValidationFailed,
    "not-found": NotFound,
    "conflict": Conflict,
}
#: The OAuth2 error code of a failed grant, by grant type (RFC 6749 section 5.2).
GRANT_ERRORS = {"password": "invalid_grant", "client_credentials": "invalid_client"}


def problem(exc: IdentityError) -> ProblemError:
    """An identity domain error as the problem it has always been shown as."""
    if isinstance(exc, InvalidCredentials):
        # one message and one code per grant type, whatever the cause (see the service)
        return Unauthorized(exc.message, error=GRANT_ERRORS[exc.grant])
    if isinstance(exc, PlatformGrantRefused):
        try:
            refuse_platform_grants(exc.grants, field=exc.field)
        except PlatformActionRefused as refused:
            return refused
    return KINDS.get(exc.kind, ValidationFailed)(exc.message, errors=exc.errors)


@contextlib.contextmanager
def problems() -> Iterator[None]:
    """Raise an ``IdentityError`` raised inside as its problem (``problem``)."""
    try:
        yield
    except IdentityError as exc:
        raise problem(exc) from None


def checked(check: Callable[[ProvisionRequest], None]) -> Callable[[ProvisionRequest], None]:
    """The provisioner's request check with identity's errors as problems (a 422)."""

    def run(req: ProvisionRequest) -> None:
        with problems():
            check(req)

    return run


class IdentityClients:
    """The ``ClientIssuer`` port (the command line, tests): the service's ``create_client``
    with its errors as problems (the CLI exits 2 for a 422, 1 for a 404)."""

    def __init__(self, service: IdentityService[Any]) -> None:
        self.service = service

    async def create_client(
        self, tenant: Tenant, name: str, roles: list[str]
    ) -> tuple[ApiClient, str]:
        with problems():
            return await self.service.create_client(tenant, name, roles)


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


def build_router(service: IdentityService[Any], permissions: Mapping[str, str]) -> APIRouter:
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
            with problems():
                result = await service.password_grant(username, password, tenant)
        elif grant_type == "client_credentials":
            basic = _basic_auth(request)
            cid, secret = basic if basic else (client_id or "", client_secret or "")
            if not cid or not secret:
                raise Unauthorized("client authentication failed", error="invalid_client")
            with problems():
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
        return {"items": await service.my_tenants(p)}

    async def active_members() -> int:
        return await service.member_count(require_tenant())

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
        with problems():
            user_id, created = await service.add_member(
                tenant, body.email, body.password, body.roles
            )
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
        items, nxt = await service.members(require_tenant(), q)
        return {"items": [profile_of(m) for m in items], "next_cursor": nxt}

    @router.post("/users/search", summary="Members, with the filter document in the body")
    async def search_users(
        _: Annotated[Principal, Depends(require(ADMIN))],
        q: Annotated[ListQuery, Depends(search_query(MEMBER_FIELDS))],
    ) -> dict[str, Any]:
        items, nxt = await service.members(require_tenant(), q)
        return {"items": [profile_of(m) for m in items], "next_cursor": nxt}

    @router.get("/users/{user_id:uuid}", openapi_extra=problems_extra(404))
    async def get_user(
        user_id: UUID, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        """One member's profile (cached 300 s; every change of the membership drops it)."""
        with problems():
            return await service.member_profile(require_tenant(), user_id)

    @router.post("/users/{user_id:uuid}/disable", openapi_extra=problems_extra(409))
    async def disable_user(
        user_id: UUID, p: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        """Disable the user's membership (their tokens stop working within a second); not
        your own (409)."""
        with problems():
            await service.set_member_status(require_tenant(), user_id, "disabled", by=p.subject)
        return {"id": str(user_id), "status": "disabled"}

    @router.delete("/users/{user_id:uuid}", status_code=204, openapi_extra=problems_extra(409))
    async def remove_user(user_id: UUID, p: Annotated[Principal, Depends(require(ADMIN))]) -> None:
        """Remove the user from this tenant (their tokens stop working within a second)."""
        with problems():
            await service.remove_member(require_tenant(), user_id, p.subject)

    @router.post("/users/{user_id:uuid}/enable")
    async def enable_user(
        user_id: UUID, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        with problems():
            await service.set_member_status(require_tenant(), user_id, "active")
        return {"id": str(user_id), "status": "active"}

    @router.post("/clients", status_code=201, openapi_extra=problems_extra(404))
    async def create_client(
        body: NewClient, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        with problems():
            client, secret = await service.create_client(require_tenant(), body.name, body.roles)
        return {**_client(client), "client_secret": secret}

    @router.get("/clients")
    async def list_clients(_: Annotated[Principal, Depends(require(ADMIN))]) -> dict[str, Any]:
        return {"items": [_client(c) for c in await service.clients(require_tenant())]}

    @router.post("/clients/{id_:uuid}/disable")
    async def disable_client(
        id_: UUID, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        """Disable the API client (its tokens stop working within a second)."""
        with problems():
            await service.set_client_status(require_tenant(), id_, "disabled")
        return {"id": str(id_), "status": "disabled"}

    @router.get("/roles")
    async def list_roles(_: Annotated[Principal, Depends(require(ADMIN))]) -> dict[str, Any]:
        return {"items": await service.roles(require_tenant())}

    @router.post("/roles", status_code=201, openapi_extra=problems_extra(409))
    @documents(_role_actions(permissions))
    async def create_role(
        body: NewRole, _: Annotated[Principal, Depends(require(ADMIN))]
    ) -> dict[str, Any]:
        with problems():
            await service.save_role(
                require_tenant(),
                body.name,
                body.actions,
                body.description,
                permissions,
                create=True,
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
        with problems():
            await service.save_role(
                require_tenant(), name, body.actions, body.description, permissions, create=False
            )
        return {"name": name, "actions": sorted(set(body.actions)), "description": body.description}

    @router.delete("/roles/{name}", status_code=204, openapi_extra=problems_extra(409))
    async def delete_role(
        name: Annotated[str, Path(pattern=ROLE_RE.pattern, max_length=63)],
        _: Annotated[Principal, Depends(require(ADMIN))],
    ) -> None:
        with problems():
            await service.delete_role(require_tenant(), name)

    return router


__all__ = ["ADMIN", "IdentityClients", "build_router", "checked", "problem", "problems"]
