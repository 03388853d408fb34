"""The daily summary table (tenant store), in the caller's unit of work."""

from __future__ import annotations

from datetime import date
from typing import Any

from tenantry.kernel.db.uow import UnitOfWork
from tenantry_reporting.domain.summary import Delta
from tenantry_reporting.infrastructure.sql import DAILY, DASHBOARD, DASHBOARD_ACCOUNTS, UPSERT


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

    async def dashboard(self, uow: UnitOfWork) -> dict[str, Any]:
        head = await uow.fetchrow(DASHBOARD)
        accounts = await uow.fetch(DASHBOARD_ACCOUNTS)
        first = head["first_day"] if head else None
        last = head["last_day"] if head else None
        return {
            "first_day": first.isoformat() if first else None,
            "last_day": last.isoformat() if last else None,
            "accounts": [{"id": str(r["account_id"]), "code": r["account_code"]} for r in accounts],
            "currencies": list(head["currencies"]) if head else [],
        }
