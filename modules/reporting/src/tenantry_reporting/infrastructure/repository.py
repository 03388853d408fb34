"""The daily summary table (tenant store), in the caller's unit of work."""

from __future__ import annotations

from datetime import date
from typing import Any

from tenantry.kernel.db.uow import UnitOfWork
from tenantry_reporting.domain.summary import Delta

UPSERT = """
INSERT INTO reporting_daily (day, account_id, account_code, currency, debit, credit, entries)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, day, account_id, currency) DO UPDATE
SET debit = reporting_daily.debit + EXCLUDED.debit,
    credit = reporting_daily.credit + EXCLUDED.credit,
    entries = reporting_daily.entries + EXCLUDED.entries,
    account_code = EXCLUDED.account_code
"""

DAILY = """
SELECT day, account_id, account_code, currency, debit, credit, entries
FROM reporting_daily
WHERE day BETWEEN $1 AND $2
ORDER BY day, account_code, currency
LIMIT 10000
"""


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
