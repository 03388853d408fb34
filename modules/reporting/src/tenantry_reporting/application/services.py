"""Reporting's read use case: the daily summary over a range of days.

The service opens its unit of work from the factory it was given (read-only), asks the
repository for the rows, and returns a domain result (``DailyPage``); HTTP is the routes'
business. Folding ``ledger.TransactionPosted.v1`` into the summary is a message handler
(application/handlers.py): it runs in the dispatcher's unit of work. The dashboard's
metadata reads through the platform cache (``reporting:dashboard``, 300 s); a fold that adds
a day, account or currency it does not list yet has every process load it anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Generic

from tenantry.kernel.db.ports import UnitsOfWork, W
from tenantry_reporting.application.ports import DashboardCache, SummaryRepository
from tenantry_reporting.domain.summary import page_of

#: The longest range one answer covers; a longer one comes in pages.
MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class DailyPage:
    """The rows of ``start..end`` (inclusive); ``next_start`` is the first day of the next
    page (None on the last one). A range whose end is before its start is empty, with
    ``end`` as asked."""

    start: date
    end: date
    items: list[dict[str, Any]]
    next_start: date | None


class ReportingService(Generic[W]):
    def __init__(
        self,
        uow: UnitsOfWork[W],
        repository: SummaryRepository[W],
        dashboards: DashboardCache[W] | None = None,
    ) -> None:
        #: Opens a unit of work in the current tenant (kernel: ``Database.unit_of_work``).
        self.uow = uow
        self.repository = repository
        #: The dashboard metadata in the platform cache (None: read the table every time).
        self.dashboards = dashboards

    async def daily(self, start: date, to: date) -> DailyPage:
        """The daily summary of ``start..to``, at most ``MAX_DAYS`` days of it."""
        page = page_of(start, to, MAX_DAYS)
        if page is None:
            return DailyPage(start, to, [], None)  # nothing to read: no unit of work
        async with self.uow(readonly=True) as uow:
            items = await self.repository.daily(uow, page.start, page.end)
        return DailyPage(page.start, page.end, items, page.next_start)

    async def dashboard(self) -> dict[str, Any]:
        """The dashboard's metadata (days covered, accounts, currencies), cached 300 s."""

        async def load() -> dict[str, Any]:
            async with self.uow(readonly=True) as uow:
                return await self.repository.dashboard(uow)

        return await (self.dashboards.get(load) if self.dashboards else load())


__all__ = ["MAX_DAYS", "DailyPage", "ReportingService"]
