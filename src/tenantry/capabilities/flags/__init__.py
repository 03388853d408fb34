"""Feature flags per tenant and plan, with percentage rollouts.

    from tenantry.capabilities import flags
    if flags.enabled(request, "new-reports"): ...                 # microseconds, no I/O
    @router.get("/beta", dependencies=[Depends(flags.require("new-reports"))])   # 404 if off

Also through OpenFeature (``flags.provider.TenantryProvider``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from tenantry.capabilities.flags.store import Evaluation, Flag, FlagStore
from tenantry.kernel.errors import NotFound
from tenantry.kernel.tenancy.context import current_tenant

__all__ = ["Evaluation", "Flag", "FlagStore", "enabled", "require", "store_of"]


def store_of(request: Request) -> FlagStore | None:
    platform = getattr(request.app.state, "platform", None)
    return platform.find(FlagStore) if platform is not None else None


def enabled(request: Request, name: str) -> bool:
    """Is ``name`` on for the tenant in context? (No tenant or no flags capability: off.)"""
    store, tenant = store_of(request), current_tenant()
    return bool(store and tenant and store.enabled(name, tenant))


def require(name: str) -> Callable[[Request], Awaitable[None]]:
    """Route dependency: the route exists for a tenant only while ``name`` is on (404 else),
    so a module can ship a route or behaviour dark and turn it on per tenant or plan."""

    async def dependency(request: Request) -> None:
        if not enabled(request, name):
            raise NotFound("not found")

    dependency.__name__ = f"flag_{name.replace('-', '_').replace('.', '_')}"
    return dependency
