"""The ambient tenant context.

Middleware sets it from the verified token; every unit of work reads it. Handlers never pass
a tenant id into queries by hand. ``tenant_scope`` is the one way to enter a tenant's context
outside a request (CLI, jobs, consumers, tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from uuid import UUID

from tenantry.kernel.errors import NoTenantContext
from tenantry.kernel.tenancy.model import Tenant


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (``sub`` = user id) or an API client."""

    subject: str
    tenant_id: UUID
    kind: str = "user"  # "user" | "client"
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None

    def can(self, action: str) -> bool:
        return action in self.scopes


@dataclass(frozen=True, slots=True)
class TenantContext:
    tenant: Tenant
    principal: Principal | None = None


_current: ContextVar[TenantContext | None] = ContextVar("tenantry_tenant", default=None)


def current_context() -> TenantContext | None:
    """The tenant and principal in one read (hot paths that need both)."""
    return _current.get()


def current_tenant() -> Tenant | None:
    ctx = _current.get()
    return ctx.tenant if ctx else None


def current_principal() -> Principal | None:
    ctx = _current.get()
    return ctx.principal if ctx else None


def require_tenant() -> Tenant:
    tenant = current_tenant()
    if tenant is None:
        raise NoTenantContext(
            "no tenant in context: enter one with tenant_scope() or use a platform unit of work"
        )
    return tenant


@contextmanager
def tenant_scope(tenant: Tenant, principal: Principal | None = None) -> Iterator[TenantContext]:
    ctx = TenantContext(tenant, principal)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def set_context(ctx: TenantContext | None) -> object:
    """Low-level setter for ASGI middleware; returns a token for ``reset_context``."""
    return _current.set(ctx)


def reset_context(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
