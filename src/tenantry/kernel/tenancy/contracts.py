"""The platform's own messages (owner ``platform``), for modules to handle or consume.

- ``SeedChartOfAccounts`` (command): sent by the onboarding saga into the new tenant's
  context when a module handles it (the ledger: ``platform.dispatcher.handle("ledger",
  SeedChartOfAccounts, handler)``); it creates the tenant's default chart of accounts.
- ``TenantOnboarded`` (event): published in the new tenant's outbox as the saga's last step;
  the notifications module sends the welcome message.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class SeedChartOfAccounts(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "platform.SeedChartOfAccounts.v1"
    template: str = "default"
    currency: str = "EUR"


class TenantOnboarded(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "platform.TenantOnboarded.v1"
    tenant_id: UUID
    slug: str
    name: str
    isolation: str
    admin_email: str | None = None


__all__ = ["SeedChartOfAccounts", "TenantOnboarded"]
