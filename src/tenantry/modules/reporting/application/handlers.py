"""Reporting's use cases: fold ``ledger.TransactionPosted.v1`` into the daily summary, and
read it back. Handlers get a unit of work (the sender's tenant; RLS applies), never a tenant
id or a connection."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry.modules.ledger.contracts import TransactionPosted
from tenantry.modules.reporting.domain.summary import Delta, deltas


class SummaryStore(Protocol):
    async def apply(self, uow: UnitOfWork, rows: list[Delta]) -> None: ...
    async def daily(self, uow: UnitOfWork, start: date, end: date) -> list[dict[str, Any]]: ...


class Reporting:
    def __init__(self, store: SummaryStore) -> None:
        self.store = store

    async def on_transaction_posted(
        self, uow: UnitOfWork, event: TransactionPosted, ctx: MessageContext
    ) -> None:
        await self.store.apply(uow, deltas(event.posted_at, list(event.entries)))

    async def daily(self, uow: UnitOfWork, start: date, end: date) -> list[dict[str, Any]]:
        return await self.store.daily(uow, start, end)
