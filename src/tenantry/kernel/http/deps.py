"""Route dependencies: who is calling, and may they do this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from tenantry.kernel.errors import Forbidden, Unauthorized
from tenantry.kernel.http.openapi import PERMISSION_ATTR
from tenantry.kernel.tenancy.context import Principal, current_principal


def principal() -> Principal:
    p = current_principal()
    if p is None:
        raise Unauthorized("a bearer token is required")
    return p


def require(action: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the caller must hold ``action`` (deny by default).

    With an authorizer registered on the platform (``Platform.set_authorizer``, done by the
    authz capability) the decision is its own; otherwise the token's scopes decide.
    """

    async def dependency(request: Request) -> Principal:
        p = principal()
        platform = getattr(request.app.state, "platform", None)
        authorizer = getattr(platform, "authorizer", None)
        if authorizer is not None:
            allowed, _reason = await authorizer.authorize(p, action)
        else:
            allowed = p.can(action)
        if not allowed:
            raise Forbidden(f"this requires the permission {action!r}", required=action)
        return p

    dependency.__name__ = f"require_{action.replace(':', '_')}"
    setattr(dependency, PERMISSION_ATTR, action)  # the OpenAPI document lists it
    return dependency
