"""Reporting's startup object: wiring only (no I/O, no SQL).

``setup`` builds the application service on the kernel's unit-of-work factory and the SQL
repository, mounts the routes, subscribes the handler that folds
``ledger.TransactionPosted.v1`` into the daily summary, and registers the export source.
"""

from __future__ import annotations

from typing import ClassVar

from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.modules import Module
from tenantry.kernel.registrar import Registrar
from tenantry_ledger.contracts import TransactionPosted
from tenantry_reporting.application.handlers import ReportingHandlers
from tenantry_reporting.application.services import MAX_DAYS, ReportingService
from tenantry_reporting.infrastructure.export_sources import register_export_sources
from tenantry_reporting.infrastructure.repository import SqlSummaryRepository
from tenantry_reporting.routes import READ, build_router


class ReportingModule(Module):
    name: ClassVar[str] = "reporting"
    migrations: ClassVar[str | None] = "tenantry_reporting.migrations"
    permissions: ClassVar[dict[str, str]] = {READ: "read reports"}

    def __init__(self) -> None:
        self.service: ReportingService[UnitOfWork] | None = None

    def setup(self, registrar: Registrar) -> None:
        repository = SqlSummaryRepository()
        service = ReportingService(registrar.db.unit_of_work, repository)
        self.service = service
        handlers = ReportingHandlers(repository)
        registrar.dispatcher.subscribe(self.name, TransactionPosted, handlers.on_transaction_posted)
        registrar.include_router(build_router(service))
        register_export_sources(registrar)


module = ReportingModule()

__all__ = ["MAX_DAYS", "READ", "ReportingModule", "module"]
