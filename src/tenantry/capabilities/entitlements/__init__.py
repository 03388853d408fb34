"""Plans and entitlements: what a tenant's plan allows, checked in one call.

    @router.post("/users", dependencies=[Depends(entitlements.require("max_users",
                                                                     usage=count_users))])

``require`` answers 402 ``quota-exceeded`` (the plan's limit is reached: upgrade) or 403
``not-entitled`` (the plan does not include it: limit 0), both naming the limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request

from tenantry.capabilities.entitlements.plans import Plan, Plans
from tenantry.kernel.errors import Forbidden, ProblemError
from tenantry.kernel.http.deps import principal
from tenantry.kernel.http.openapi import declares
from tenantry.kernel.tenancy.context import require_tenant

__all__ = ["NotEntitled", "Plan", "Plans", "QuotaExceeded", "check", "plans_of", "require"]

Usage = Callable[[], Awaitable[int]]


class QuotaExceeded(ProblemError):
    status, type_slug, title = 402, "quota-exceeded", "Plan limit reached"


class NotEntitled(Forbidden):
    type_slug, title = "not-entitled", "Not included in the plan"


def plans_of(request: Request) -> Plans | None:
    platform = getattr(request.app.state, "platform", None)
    return platform.find(Plans) if platform is not None else None


def check(plan: Plan, limit: str, used: int, adding: int = 1) -> None:
    """Raise unless ``used + adding`` fits ``plan``'s ``limit``."""
    allowed = plan.quota(limit)
    if allowed is None:
        return
    info: dict[str, Any] = {"limit": limit, "allowed": allowed, "used": used, "plan": plan.name}
    if allowed <= 0:
        raise NotEntitled(f"the {plan.name} plan does not include {limit}", **info)
    if used + adding > allowed:
        raise QuotaExceeded(
            f"the {plan.name} plan allows {limit} = {allowed}; {used} in use", **info
        )


def require(limit: str, usage: Usage | None = None) -> Callable[[Request], Awaitable[None]]:
    """Route dependency: the current tenant's plan must leave room under ``limit``.

    ``usage`` counts what is in use now (e.g. the tenant's members); without it only a limit
    of 0 (not in the plan) refuses. Concurrent requests can overshoot by their number: the
    count is not locked.
    """

    @declares(402, 403)
    async def dependency(request: Request) -> None:
        principal()  # 401 before anything is counted
        plans = plans_of(request)
        if plans is None:
            return
        plan = await plans.for_tenant(require_tenant())
        if plan.quota(limit) is None:
            return
        used = await usage() if usage is not None else 0
        check(plan, limit, used)

    dependency.__name__ = f"entitled_{limit}"
    return dependency
