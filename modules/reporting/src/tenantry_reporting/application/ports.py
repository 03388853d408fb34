"""What reporting's use cases need from the outside world: a unit of work (opened from the
factory the service is given, or handed to a message handler by the dispatcher) and a
repository that works inside it.

Both are protocols generic over the unit of work's type, so the service runs the same way
on the kernel's ``UnitOfWork`` + ``SqlSummaryRepository`` and on the in-memory fakes of the
unit tests (modules/reporting/tests/reporting_fakes.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, Protocol

from tenantry.kernel.db.ports import W_contra
from tenantry_reporting.domain.summary import Delta


class SummaryRepository(Protocol[W_contra]):
    """The daily summary rows, inside the caller's unit of work (never opens, commits,
    publishes or audits)."""

    async def apply(self, uow: W_contra, rows: list[Delta]) -> None: ...

    async def daily(self, uow: W_contra, start: date, end: date) -> list[dict[str, Any]]: ...

    async def dashboard(self, uow: W_contra) -> dict[str, Any]:
        """The dashboard's metadata: first/last day (ISO), accounts (id, code), currencies."""
        ...


class DashboardCache(Protocol[W_contra]):
    """The dashboard metadata in the platform cache (infrastructure/cache.py): ``get`` reads
    through, ``peek`` is the cached value without loading (None: not cached), ``changed``
    tells every process, at the fold's commit, that it must load the metadata anew."""

    async def get(self, load: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]: ...

    async def peek(self) -> dict[str, Any] | None: ...

    async def changed(self, uow: W_contra) -> None: ...
