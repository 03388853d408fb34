"""The daily summary table (tenant store), in the caller's unit of work."""

from __future__ import annotations

from datetime import date
from typing import Any

from tenantry.kernel.db.uow import UnitOfWork
from tenantry_reporting.domain.summary import Delta
from tenantry_reporting.infrastructure.sql import DAILY, UPSERT


class SqlSummaryRepository:
    """``SummaryRepository[UnitOfWork]``: never opens a transaction, publishes or audits."""

    async def apply(self, uow: UnitOfWork, rows: list[Delta]) -> None:
        await uow.executemany(
            UPSERT,
            [
                (
                    r.day,
                    r.account_id,
                    r.account_code,
                    r.currency,
                    r.debit,
                    r.credit,
                    r.count,
                )
                for r in rows
            ],
        )

    async def daily(self, uow: UnitOfWork, start: date, end: date) -> list[dict[str, Any]]:
        return [
            {
                "day": r["day"].isoformat(),
                "account_id": str(r["account_id"]),
                "account_code": r["account_code"],
                "currency": r["currency"],
                "debit": r["debit"],
                "credit": r["credit"],
                "volume": r["debit"] + r["credit"],
                "count": r["entries"],
            }
            for r in await uow.fetch(DAILY, start, end)
        ]
