"""``/api/v1/platform/errors`` and ``/api/v1/platform/slo``: platform admins only.

A triage (``PATCH /errors/{id}``) goes through ``ErrorTracker.set_status``, the path of
``tenantry errors resolve`` too: audited as ``error.status_set`` in the operator tenant's log
(only its members hold ``platform:admin``), in the transaction of the change, with the token's
subject as the actor (kernel/tenancy/audit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict

from tenantry.kernel.auth.actions import PLATFORM_ADMIN
from tenantry.kernel.errors import NotFound
from tenantry.kernel.http.deps import require
from tenantry.kernel.http.input_guard import INT64_MAX
from tenantry.kernel.observability import slo

if TYPE_CHECKING:
    from tenantry.kernel.observability.hub import Observability
    from tenantry.kernel.observability.settings import SloSettings

#: Most error groups one page lists (the store's own cap).
MAX_ERRORS = 500
GroupId = Annotated[int, Path(ge=1, le=INT64_MAX)]


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["unresolved", "resolved", "ignored"]


def build_router(hub: Observability, slo_settings: SloSettings) -> APIRouter:
    router = APIRouter(tags=["platform"], dependencies=[Depends(require(PLATFORM_ADMIN))])

    @router.get("/errors")
    async def list_errors(
        status: Literal["unresolved", "resolved", "ignored"] | None = None,
        environment: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_ERRORS)] = 50,
    ) -> dict[str, Any]:
        items = await hub.errors.list(status, limit, environment)
        return {"items": items}

    @router.get("/errors/{group_id}")
    async def show_error(group_id: GroupId) -> dict[str, Any]:
        group = await hub.errors.show(group_id)
        if group is None:
            raise NotFound(f"no error group {group_id}")
        return group

    @router.patch("/errors/{group_id}")
    async def change_error(group_id: GroupId, body: StatusChange) -> dict[str, Any]:
        if not await hub.errors.set_status(group_id, body.status):
            raise NotFound(f"no error group {group_id}")
        group = await hub.errors.show(group_id, occurrences=0)
        assert group is not None
        return group

    @router.get("/slo")
    async def slo_report() -> dict[str, Any]:
        s = slo_settings
        return {"window_days": s.window_days, "slos": await slo.report(hub.db, s)}

    return router
