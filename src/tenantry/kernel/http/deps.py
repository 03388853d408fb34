"""Route dependencies: who is calling, and may they do this."""

from __future__ import annotations

from collections.abc import Callable

from tenantry.kernel.errors import Forbidden, Unauthorized
from tenantry.kernel.tenancy.context import Principal, current_principal


def principal() -> Principal:
    p = current_principal()
    if p is None:
        raise Unauthorized("a bearer token is required")
    return p


def require(action: str) -> Callable[[], Principal]:
    """Dependency: the caller must hold ``action`` (deny by default)."""

    def dependency() -> Principal:
        p = principal()
        if not p.can(action):
            raise Forbidden(f"this requires the permission {action!r}", required=action)
        return p

    dependency.__name__ = f"require_{action.replace(':', '_')}"
    return dependency
