"""Reporting's message handler: fold ``ledger.TransactionPosted.v1`` into the daily summary.
It gets the dispatcher's unit of work (the sender's tenant; the tenant filter and RLS apply),
never a tenant id or a connection, and writes through the repository."""

from __future__ import annotations

from typing import Generic

from tenantry.kernel.db.ports import W
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry_ledger.contracts import TransactionPosted
from tenantry_reporting.application.ports import DashboardCache, SummaryRepository
from tenantry_reporting.domain.summary import covers, deltas


class ReportingHandlers(Generic[W]):
    """Generic in the unit of work's type (the kernel's ``UnitOfWork`` when subscribed; the
    fakes of modules/reporting/tests/reporting_fakes.py in unit tests)."""

    def __init__(
        self, repository: SummaryRepository[W], dashboards: DashboardCache[W] | None = None
    ) -> None:
        self.repository = repository
        self.dashboards = dashboards

    async def on_transaction_posted(
        self, uow: W, event: TransactionPosted, ctx: MessageContext
    ) -> None:
        rows = deltas(event.posted_at, list(event.entries))
        await self.repository.apply(uow, rows)
        if self.dashboards is not None:
            # Only a fold that adds a day, account or currency changes the dashboard's
            # metadata: tell every process at the commit (a NOTIFY per fold would take
            # PostgreSQL's global NOTIFY lock at every commit). Nothing cached: tell them too
            # (a read may be filling the cache from before this commit).
            known = await self.dashboards.peek()
            if known is None or not covers(known, rows):
                await self.dashboards.changed(uow)
