"""The port through which the command line (``tenantry clients create``) and tests create API
clients (``client_credentials``): the identity module provides it
(``registrar.provide(ClientIssuer, service)``); the kernel only knows its shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from tenantry.kernel.tenancy.model import Tenant


class IssuedClient(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def client_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def roles(self) -> list[str]: ...


class ClientIssuer(Protocol):
    async def create_client(
        self, tenant: Tenant, name: str, roles: list[str]
    ) -> tuple[IssuedClient, str]:
        """A new API client of ``tenant`` with ``roles``, and its secret (shown once)."""
        ...
