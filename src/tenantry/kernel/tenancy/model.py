"""The tenant as the catalog records it. Isolation modes are data, not code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
SHARED_SCHEMA = "tenant_shared"


class IsolationMode(StrEnum):
    SHARED = "shared"
    SCHEMA = "schema"
    DATABASE = "database"


class TenantStatus(StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    SUSPENDED = "suspended"


def validate_slug(slug: str) -> str:
    if not SLUG_RE.match(slug):
        raise ValueError(
            "a tenant slug is 3-40 characters: lower-case letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return slug


def schema_for(slug: str, mode: IsolationMode) -> str:
    """The schema that holds a tenant's data: shared schema, or its own."""
    if mode is IsolationMode.SCHEMA:
        return "tenant_" + slug.replace("-", "_")
    return SHARED_SCHEMA


def database_for(slug: str) -> str:
    return "tenantry_t_" + slug.replace("-", "_")


@dataclass(frozen=True, slots=True)
class Tenant:
    id: UUID
    slug: str
    name: str
    isolation: IsolationMode
    status: TenantStatus
    plan: str
    server: str
    database: str | None  # None: the main database
    schema: str
    created_at: datetime

    @property
    def store_key(self) -> tuple[str, str | None, str]:
        """(server, database, schema): where this tenant's rows live."""
        return (self.server, self.database, self.schema)
