"""Reporting's HTTP routes (``/api/v1/reporting``): HTTP only. A route parses its query,
calls the application service (``ReportingService``) and writes its result as JSON."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from tenantry.kernel.http.deps import require
from tenantry.kernel.tenancy.context import Principal
from tenantry_reporting.application.services import ReportingService

READ = "reporting:read"


def build_router(service: ReportingService[Any]) -> APIRouter:
    router = APIRouter(tags=["reporting"])

    @router.get("/daily", summary="Daily volume and count per account and currency")
    async def daily(
        _: Annotated[Principal, Depends(require(READ))],
        from_: Annotated[date, Query(alias="from")],
        to: Annotated[date, Query()],
    ) -> dict[str, Any]:
        # ``to`` before ``from`` is an empty range and a range longer than MAX_DAYS comes in
        # pages (the service decides): ``to`` is the last day covered, ``next_from`` the
        # ``from`` of the next page (null on the last one).
        page = await service.daily(from_, to)
        return {
            "from": page.start.isoformat(),
            "to": page.end.isoformat(),
            "items": page.items,
            "next_from": page.next_start.isoformat() if page.next_start else None,
        }

    @router.get("/dashboard", summary="The dashboard's metadata: days, accounts, currencies")
    async def dashboard(_: Annotated[Principal, Depends(require(READ))]) -> dict[str, Any]:
        # ``first_day`` / ``last_day``: the range the daily summary covers (null when empty)
        return await service.dashboard()

    return router


__all__ = ["READ", "build_router"]
