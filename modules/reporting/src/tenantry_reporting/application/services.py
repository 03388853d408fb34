"""Reporting's read use case: the daily summary over a range of days.

The service opens its unit of work from the factory it was given (read-only), asks the
repository for the rows, and returns a domain result (``DailyPage``); HTTP is the routes'
business. Folding ``ledger.TransactionPosted.v1`` into the summary is a message handler
(application/handlers.py): it runs in the dispatcher's unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Generic

from tenantry.kernel.db.ports import UnitsOfWork, W
from tenantry_reporting.application.ports import SummaryRepository
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
    def __init__(self, uow: UnitsOfWork[W], repository: SummaryRepository[W]) -> None:
        #: Opens a unit of work in the current tenant (kernel: ``Database.unit_of_work``).
        self.uow = uow
        self.repository = repository

    async def daily(self, start: date, to: date) -> DailyPage:
        """The daily summary of ``start..to``, at most ``MAX_DAYS`` days of it."""
        page = page_of(start, to, MAX_DAYS)
        if page is None:
            return DailyPage(start, to, [], None)  # nothing to read: no unit of work
        async with self.uow(readonly=True) as uow:
            items = await self.repository.daily(uow, page.start, page.end)
        return DailyPage(page.start, page.end, items, page.next_start)


__all__ = ["MAX_DAYS", "DailyPage", "ReportingService"]
