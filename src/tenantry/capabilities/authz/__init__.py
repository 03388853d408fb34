"""Authorization: RBAC with tenant-scoped roles plus ABAC policies, deny by default.

from tenantry.capabilities import authz
decision = await authz.check(principal, "ledger:approve",
                             authz.Resource("transaction", str(tx.id), {"amount": 5000}))
if not decision: ...                      # decision.policy names what decided

@router.post("/x", dependencies=[Depends(require("ledger:write"))])   # kernel require()
# goes through the same engine (the authz module registers itself as the authorizer).
"""

from __future__ import annotations

from tenantry.capabilities.authz.engine import Authz, notify_change
from tenantry.capabilities.authz.policy import Decision, Policy, Resource
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.errors import Forbidden
from tenantry.kernel.tenancy.context import Principal

__all__ = [
    "Authz",
    "Decision",
    "Policy",
    "Resource",
    "check",
    "enforce",
    "notify_change",
    "service",
]

#: The started platforms' services, newest last (one per process in production; tests may
#: start a second platform, which pops itself on shutdown).
_active: list[Authz] = []


def service() -> Authz:
    if not _active:
        raise RuntimeError("the authz capability is not started")
    return _active[-1]


async def check(
    principal: Principal,
    action: str,
    resource: Resource | None = None,
    *,
    uow: UnitOfWork | None = None,
) -> Decision:
    """Decide (and audit) whether ``principal`` may do ``action`` on ``resource``."""
    return await service().check(principal, action, resource, uow=uow)


async def enforce(
    principal: Principal,
    action: str,
    resource: Resource | None = None,
    *,
    uow: UnitOfWork | None = None,
) -> Decision:
    """``check``, raising 403 problem+json on a deny."""
    d = await check(principal, action, resource, uow=uow)
    if not d.allowed:
        raise Forbidden(f"this requires the permission {action!r}", required=action)
    return d
