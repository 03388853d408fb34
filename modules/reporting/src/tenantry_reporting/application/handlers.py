"""Reporting's message handler: fold ``ledger.TransactionPosted.v1`` into the daily summary.
It gets the dispatcher's unit of work (the sender's tenant; the tenant filter and RLS apply),
never a tenant id or a connection, and writes through the repository."""

from __future__ import annotations

from typing import Generic

from tenantry.kernel.db.ports import W
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry_ledger.contracts import TransactionPosted
from tenantry_reporting.application.ports import SummaryRepository
from tenantry_reporting.domain.summary import deltas


class ReportingHandlers(Generic[W]):
    """Generic in the unit of work's type (the kernel's ``UnitOfWork`` when subscribed; the
    fakes of modules/reporting/tests/reporting_fakes.py in unit tests)."""

    def __init__(self, repository: SummaryRepository[W]) -> None:
        self.repository = repository

    async def on_transaction_posted(
        self, uow: W, event: TransactionPosted, ctx: MessageContext
    ) -> None:
        await self.repository.apply(uow, deltas(event.posted_at, list(event.entries)))
