"""Identity's public surface: integration events other modules may consume."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class IntegrationEvent(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str]


class UserAddedToTenant(IntegrationEvent):
    """A person became a member of the tenant (published in the membership's transaction)."""

    message_name: ClassVar[str] = "identity.UserAddedToTenant.v1"
    user_id: UUID
    email: str
    roles: list[str]
    #: The tenant's first admin, added by the onboarding saga (the welcome message covers it).
    onboarding: bool = False


class ApiClientCreated(IntegrationEvent):
    """An API client was created for the tenant (never carries its secret)."""

    message_name: ClassVar[str] = "identity.ApiClientCreated.v1"
    client_id: str
    name: str
    roles: list[str]


__all__ = ["ApiClientCreated", "IntegrationEvent", "UserAddedToTenant"]
