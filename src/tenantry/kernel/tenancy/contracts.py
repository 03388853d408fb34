"""The platform's own messages (owner ``platform``), for modules to handle or consume.

- ``TenantOnboarded`` (event): published in the new tenant's outbox as the onboarding saga's
  last step; the notifications module sends the welcome message. ``admin_email`` is what the
  step that made the first admin remembered under that name (identity's ``admin`` step).

What a new tenant starts with (a chart of accounts, the first admin) is not the kernel's:
modules contribute it as onboarding steps (kernel/tenancy/onboarding).
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class TenantOnboarded(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "platform.TenantOnboarded.v1"
    tenant_id: UUID
    slug: str
    name: str
    isolation: str
    admin_email: str | None = None


__all__ = ["TenantOnboarded"]
