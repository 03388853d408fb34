"""The platform's own messages (owner ``platform``), for modules to handle or consume.

- ``SeedChartOfAccounts`` (command): sent by the onboarding saga into the new tenant's
  context when a module handles it (the ledger: ``dispatcher.handle("ledger",
  SeedChartOfAccounts, handler, replies=True)``); it creates the tenant's chart of accounts
  from a template, idempotently, and replies with the codes it created. The saga needs that
  reply, so the ``platform -> ledger`` edge stays in-process (a ``bus`` edge is refused at
  start-up).
- ``RemoveChartOfAccounts`` (command): the compensation: removes the accounts the seed
  created that carry no entries (tolerates a seed that ran partly or not at all).
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


class RemoveChartOfAccounts(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "platform.RemoveChartOfAccounts.v1"
    template: str = "default"


class TenantOnboarded(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "platform.TenantOnboarded.v1"
    tenant_id: UUID
    slug: str
    name: str
    isolation: str
    admin_email: str | None = None


__all__ = ["RemoveChartOfAccounts", "SeedChartOfAccounts", "TenantOnboarded"]
