"""Reporting's startup object and routes (``/api/v1/reporting``)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Query

from tenantry.kernel.http.deps import require
from tenantry.kernel.modules import Module
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.context import Principal
from tenantry.modules.ledger.contracts import TransactionPosted
from tenantry.modules.reporting.application.handlers import Reporting
from tenantry.modules.reporting.infrastructure.export_sources import register_export_sources
from tenantry.modules.reporting.infrastructure.repository import SqlSummaryStore

READ = "reporting:read"
MAX_DAYS = 366


def build_router(platform: Registrar, reporting: Reporting) -> APIRouter:
    router = APIRouter(tags=["reporting"])

    @router.get("/daily", summary="Daily volume and count per account and currency")
    async def daily(
        _: Annotated[Principal, Depends(require(READ))],
        from_: Annotated[date, Query(alias="from")],
        to: Annotated[date, Query()],
    ) -> dict[str, Any]:
        # Rules between two parameters are not errors (no schema can state them): ``to``
        # before ``from`` is an empty range, and a range longer than MAX_DAYS is answered
        # in pages of MAX_DAYS days: ``to`` is the last day covered, ``next_from`` the
        # ``from`` of the next page (null on the last one).
        if to < from_:
            return {"from": from_.isoformat(), "to": to.isoformat(), "items": [], "next_from": None}
        end, next_from = to, None
        if (to - from_).days >= MAX_DAYS:
            end = from_ + timedelta(days=MAX_DAYS - 1)
            next_from = (end + timedelta(days=1)).isoformat()
        async with platform.db.unit_of_work(readonly=True) as uow:
            items = await reporting.daily(uow, from_, end)
        return {
            "from": from_.isoformat(),
            "to": end.isoformat(),
            "items": items,
            "next_from": next_from,
        }

    return router


class ReportingModule(Module):
    name: ClassVar[str] = "reporting"
    migrations: ClassVar[str | None] = "tenantry.modules.reporting.migrations"
    permissions: ClassVar[dict[str, str]] = {READ: "read reports"}

    def setup(self, registrar: Registrar) -> None:
        reporting = Reporting(SqlSummaryStore())
        registrar.dispatcher.subscribe(
            self.name, TransactionPosted, reporting.on_transaction_posted
        )
        registrar.include_router(build_router(registrar, reporting))
        register_export_sources(registrar)


module = ReportingModule()
