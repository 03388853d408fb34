"""What reporting's use cases need from the outside world: a unit of work (opened from the
factory the service is given, or handed to a message handler by the dispatcher) and a
repository that works inside it.

Both are protocols generic over the unit of work's type, so the service runs the same way
on the kernel's ``UnitOfWork`` + ``SqlSummaryRepository`` and on the in-memory fakes of the
unit tests (modules/reporting/tests/reporting_fakes.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from tenantry.kernel.db.ports import W_contra
from tenantry_reporting.domain.summary import Delta


class SummaryRepository(Protocol[W_contra]):
    """The daily summary rows, inside the caller's unit of work (never opens, commits,
    publishes or audits)."""

    async def apply(self, uow: W_contra, rows: list[Delta]) -> None: ...

    async def daily(self, uow: W_contra, start: date, end: date) -> list[dict[str, Any]]: ...
