"""Identity's public surface: integration events other modules may consume."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class IntegrationEvent(BaseModel):
    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str]


class UserAddedToTenant(IntegrationEvent):
    message_name: ClassVar[str] = "identity.UserAddedToTenant.v1"
    user_id: UUID
    email: str
    roles: list[str]


class ApiClientCreated(IntegrationEvent):
    message_name: ClassVar[str] = "identity.ApiClientCreated.v1"
    client_id: str
    name: str
    roles: list[str]


__all__ = ["ApiClientCreated", "IntegrationEvent", "UserAddedToTenant"]
