"""What reporting's use cases need from the outside world: a unit of work (opened from the
factory the service is given, or handed to a message handler by the dispatcher) and a
repository that works inside it.

Both are protocols generic over the unit of work's type, so the service runs the same way
on the kernel's ``UnitOfWork`` + ``SqlSummaryRepository`` and on the in-memory fakes of the
unit tests (tests/unit/reporting_fakes.py).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Any, Protocol, TypeVar

from tenantry.modules.reporting.domain.summary import Delta

W = TypeVar("W")
W_co = TypeVar("W_co", covariant=True)
W_contra = TypeVar("W_contra", contravariant=True)


class UnitsOfWork(Protocol[W_co]):
    """Opens a unit of work in the current tenant: commits on exit, rolls back on an
    exception."""

    def __call__(self, *, readonly: bool = False) -> AbstractAsyncContextManager[W_co]: ...


class SummaryRepository(Protocol[W_contra]):
    """The daily summary rows, inside the caller's unit of work (never opens, commits,
    publishes or audits)."""

    async def apply(self, uow: W_contra, rows: list[Delta]) -> None: ...

    async def daily(self, uow: W_contra, start: date, end: date) -> list[dict[str, Any]]: ...
