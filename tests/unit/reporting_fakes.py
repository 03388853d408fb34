"""In-memory fakes of the unit of work and the reporting repository: ``ReportingService``
and ``ReportingHandlers`` run on them exactly as on PostgreSQL (the protocols of
reporting/application/ports.py), without a database.

``FakeUnits`` is the unit-of-work factory: each unit of work works on a copy of the summary
rows and keeps it only when its block ends without an exception (a rollback leaves nothing,
as in the database). It remembers how each unit of work was opened (``opened``).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from datetime import date
from typing import Any
from uuid import UUID

from tenantry.modules.reporting.application.handlers import ReportingHandlers
from tenantry.modules.reporting.application.services import ReportingService
from tenantry.modules.reporting.domain.summary import Delta

Key = tuple[date, UUID, str]  # (day, account, currency): the table's key within a tenant


class FakeUnitOfWork:
    def __init__(self, rows: dict[Key, dict[str, Any]], readonly: bool) -> None:
        self.rows = rows
        self.readonly = readonly


class FakeUnits:
    """The unit-of-work factory: commits copy the rows back."""

    def __init__(self) -> None:
        self.rows: dict[Key, dict[str, Any]] = {}
        self.opened: list[bool] = []  # readonly flag of each unit of work, in order
        self.commits = 0
        self.rollbacks = 0

    @contextlib.asynccontextmanager
    async def __call__(self, *, readonly: bool = False) -> AsyncIterator[FakeUnitOfWork]:
        self.opened.append(readonly)
        uow = FakeUnitOfWork(copy.deepcopy(self.rows), readonly)
        try:
            yield uow
        except BaseException:
            self.rollbacks += 1
            raise
        self.commits += 1
        if not readonly:
            self.rows = uow.rows


class FakeSummaryRepository:
    """``SummaryRepository[FakeUnitOfWork]``: the UPSERT and the range read of
    infrastructure/repository.py, on a dict."""

    LIMIT = 10000

    async def apply(self, uow: FakeUnitOfWork, rows: list[Delta]) -> None:
        assert not uow.readonly, "wrote in a read-only unit of work"
        for d in rows:
            row = uow.rows.setdefault(
                (d.day, d.account_id, d.currency), {"debit": 0, "credit": 0, "entries": 0}
            )
            row["debit"] += d.debit
            row["credit"] += d.credit
            row["entries"] += d.count
            row["account_code"] = d.account_code

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
            for (day, account, currency), r in uow.rows.items()
            if start <= day <= end
        ]
        found.sort(key=lambda v: (v["day"], v["account_code"], v["currency"]))
        return found[: self.LIMIT]


def fake_reporting() -> tuple[
    ReportingService[FakeUnitOfWork], ReportingHandlers[FakeUnitOfWork], FakeUnits
]:
    units, repository = FakeUnits(), FakeSummaryRepository()
    return ReportingService(units, repository), ReportingHandlers(repository), units
