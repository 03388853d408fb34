"""The ledger's startup object: wiring only (no I/O, no SQL).

``setup`` builds the application service on the kernel's unit-of-work factory and the SQL
repository, mounts the routes, registers the export sources and the onboarding step.
TransactionPosted.v1 events and the audit records of every posting and account change are
recorded on the posting's unit of work and written by the kernel at its commit.
"""

from __future__ import annotations

from typing import ClassVar

from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.modules import Module
from tenantry.kernel.registrar import Registrar
from tenantry_ledger.application.onboarding import CHART_OPTION, check_onboarding_request
from tenantry_ledger.application.services import REVERSAL_KEY_PREFIX, LedgerService
from tenantry_ledger.infrastructure.export_sources import register_export_sources
from tenantry_ledger.infrastructure.onboarding import CHART_STEP
from tenantry_ledger.infrastructure.repository import SqlLedgerRepository
from tenantry_ledger.routes import READ, WRITE, build_router


class LedgerModule(Module):
    name: ClassVar[str] = "ledger"
    depends_on: ClassVar[tuple[str, ...]] = ("identity",)
    migrations: ClassVar[str | None] = "tenantry_ledger.migrations"
    permissions: ClassVar[dict[str, str]] = {
        READ: "read accounts, balances, transactions and statements",
        WRITE: "open and close accounts, post and reverse transactions",
    }
    default_roles: ClassVar[dict[str, list[str]]] = {
        "accountant": [READ, WRITE],
        "ledger-viewer": [READ],
    }
    onboarding_options = (CHART_OPTION,)

    def __init__(self) -> None:
        self.service: LedgerService[UnitOfWork] | None = None

    def setup(self, registrar: Registrar) -> None:
        service = LedgerService(registrar.db.unit_of_work, SqlLedgerRepository())
        self.service = service
        registrar.include_router(build_router(service))
        register_export_sources(registrar)
        # Onboarding: the chart-of-accounts step (and its compensation) and its option.
        registrar.check_provision_request(check_onboarding_request)
        registrar.add_onboarding_step(CHART_STEP)


module = LedgerModule()

__all__ = ["READ", "REVERSAL_KEY_PREFIX", "WRITE", "LedgerModule", "module"]
