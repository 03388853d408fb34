"""In-memory fakes of the unit of work and the reporting repository: ``ReportingService``
and ``ReportingHandlers`` run on them exactly as on PostgreSQL (the protocols of
reporting/application/ports.py), without a database.

``FakeUnits`` is the unit-of-work factory: each unit of work works on a copy of the summary
rows and keeps it only when its block ends without an exception (a rollback leaves nothing,
as in the database). It remembers how each unit of work was opened (``opened``).
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypeAlias
from uuid import UUID

from tenantry.testing import fakes
from tenantry_reporting.application.handlers import ReportingHandlers
from tenantry_reporting.application.services import ReportingService
from tenantry_reporting.domain.summary import Delta

Key = tuple[date, UUID, str]  # (day, account, currency): the table's key within a tenant
Rows = dict[Key, dict[str, Any]]


FakeUnitOfWork: TypeAlias = fakes.FakeUnitOfWork[Rows]


class FakeUnits(fakes.FakeUnits[Rows]):
    """The unit-of-work factory (tenantry.testing.fakes) over no summary rows."""

    def __init__(self) -> None:
        super().__init__({})


class FakeSummaryRepository:
    """``SummaryRepository[FakeUnitOfWork]``: the UPSERT and the range read of
    infrastructure/repository.py, on a dict."""

    LIMIT = 10000

    async def apply(self, uow: FakeUnitOfWork, rows: list[Delta]) -> None:
        assert not uow.readonly, "wrote in a read-only unit of work"
        for d in rows:
            row = uow.state.setdefault(
                (d.day, d.account_id, d.currency), {"debit": 0, "credit": 0, "entries": 0}
            )
            row["debit"] += d.debit
            row["credit"] += d.credit
            row["entries"] += d.count
            row["account_code"] = d.account_code

    async def dashboard(self, uow: FakeUnitOfWork) -> dict[str, Any]:
        keys = sorted(uow.state)
        return {
            "first_day": keys[0][0].isoformat() if keys else None,
            "last_day": keys[-1][0].isoformat() if keys else None,
            "accounts": sorted(
                {
                    str(a): {"id": str(a), "code": uow.state[(d, a, c)]["account_code"]}
                    for d, a, c in keys
                }.values(),
                key=lambda x: (x["code"], x["id"]),
            ),
            "currencies": sorted({c for _, _, c in keys}),
        }

    async def daily(self, uow: FakeUnitOfWork, start: date, end: date) -> list[dict[str, Any]]:
        found = [
            {
                "day": day.isoformat(),
                "account_id": str(account),
                "account_code": r["account_code"],
                "currency": currency,
                "debit": r["debit"],
                "credit": r["credit"],
                "volume": r["debit"] + r["credit"],
                "count": r["entries"],
            }
            for (day, account, currency), r in uow.state.items()
            if start <= day <= end
        ]
        found.sort(key=lambda v: (v["day"], v["account_code"], v["currency"]))
        return found[: self.LIMIT]


def fake_reporting() -> tuple[
    ReportingService[FakeUnitOfWork], ReportingHandlers[FakeUnitOfWork], FakeUnits
]:
    units, repository = FakeUnits(), FakeSummaryRepository()
    return ReportingService(units, repository), ReportingHandlers(repository), units
