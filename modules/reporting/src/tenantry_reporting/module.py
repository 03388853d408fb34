"""Reporting's startup object: wiring only (no I/O, no SQL).

``setup`` builds the application service on the kernel's unit-of-work factory and the SQL
repository, mounts the routes, subscribes the handler that folds
``ledger.TransactionPosted.v1`` into the daily summary, and registers the export source.
"""

from __future__ import annotations

from typing import ClassVar

from tenantry.capabilities.cache import Cache
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import Registrar
from tenantry_ledger.contracts import TransactionPosted
from tenantry_reporting.application.handlers import ReportingHandlers
from tenantry_reporting.application.services import MAX_DAYS, ReportingService
from tenantry_reporting.infrastructure.cache import CachedDashboards
from tenantry_reporting.infrastructure.export_sources import register_export_sources
from tenantry_reporting.infrastructure.repository import SqlSummaryRepository
from tenantry_reporting.infrastructure.sql import DASHBOARD_CHANNEL
from tenantry_reporting.routes import READ, build_router


class ReportingModule(Module):
    name: ClassVar[str] = "reporting"
    depends_on: ClassVar[tuple[str, ...]] = ("cache",)
    migrations: ClassVar[str | None] = "tenantry_reporting.migrations"
    permissions: ClassVar[dict[str, str]] = {READ: "read reports"}

    def __init__(self) -> None:
        self.service: ReportingService[UnitOfWork] | None = None
        #: Each platform's dashboard cache, by its Cache (the module object is shared by
        #: every platform a process builds: tests build several).
        self._dashboards: dict[int, CachedDashboards] = {}

    def setup(self, registrar: Registrar) -> None:
        repository = SqlSummaryRepository()
        cache = registrar.find(Cache)
        dashboards = None
        if cache is not None:
            dashboards = self._dashboards[id(cache)] = CachedDashboards(cache)
        service = ReportingService(registrar.db.unit_of_work, repository, dashboards)
        self.service = service
        handlers = ReportingHandlers(repository, dashboards)
        registrar.dispatcher.subscribe(self.name, TransactionPosted, handlers.on_transaction_posted)
        registrar.include_router(build_router(service))
        register_export_sources(registrar)

    async def startup(self, platform: Platform) -> None:
        dashboards = self._of(platform)
        if dashboards is not None:
            await platform.db.listen(DASHBOARD_CHANNEL, dashboards.on_notify)

    async def shutdown(self, platform: Platform) -> None:
        dashboards = self._of(platform)
        if dashboards is not None:
            await platform.db.unlisten(DASHBOARD_CHANNEL, dashboards.on_notify)

    def _of(self, platform: Platform) -> CachedDashboards | None:
        cache = platform.find(Cache)
        return None if cache is None else self._dashboards.get(id(cache))


module = ReportingModule()

__all__ = ["MAX_DAYS", "READ", "ReportingModule", "module"]
