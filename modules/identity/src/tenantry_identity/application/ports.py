"""What the identity use cases need from the outside world: units of work (opened from the
factory the service is given), a repository that works inside them, the tenant catalog,
password hashing and token signing.

The unit-of-work factory and the repository are protocols generic over the unit of work's
type, so the service runs the same way on the kernel's ``UnitOfWork`` +
``SqlIdentityRepository`` and on the in-memory fakes of the unit tests
(modules/identity/tests/identity_fakes.py).

Identity's rows live in two places: roles in the tenant's own store; logins (``users``),
memberships and API clients in the platform schema of the main database. Hence three kinds of
unit of work (``IdentityUnits``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from tenantry.kernel.db.ports import W_co, W_contra
from tenantry.kernel.tenancy.model import Tenant
from tenantry_identity.domain.model import ApiClient, Member

Page = tuple[list[Member], str | None]


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Verify; with ``hashed`` None, spend the same time and return False."""
        ...


class SecretHasher(Protocol):
    def __call__(self, secret: str) -> str: ...


class SecretMatches(Protocol):
    def __call__(self, secret: str, stored: str | None) -> bool:
        """Constant time; with ``stored`` None, compare against a dummy and return False."""
        ...


class TokenIssuer(Protocol):
    async def issue(
        self,
        *,
        subject: str,
        tenant_id: UUID,
        roles: list[str],
        scopes: list[str],
        kind: str = "user",
    ) -> tuple[str, int]: ...


class Tenants(Protocol):
    """The tenant catalog as identity reads it (cached: the token request's lookups)."""

    async def by_slug(self, slug: str) -> Tenant | None: ...

    async def by_id(self, tenant_id: UUID) -> Tenant | None: ...


@dataclass(frozen=True, slots=True)
class Login:
    """A login's row for one tenant: what the password grant decides on. ``actions``: the
    actions of its roles when read in the same statement (None: not read)."""

    user_id: UUID
    password_hash: str
    user_status: str
    member_status: str
    roles: list[str]
    actions: list[str] | None = None


@dataclass(frozen=True, slots=True)
class ClientLogin:
    """An API client's row: what the client_credentials grant decides on (``actions`` as
    in ``Login``)."""

    tenant_id: UUID
    client_id: str
    secret_hash: str
    status: str
    roles: list[str]
    actions: list[str] | None = None


class IdentityUnits(Protocol[W_co]):
    """Opens identity's units of work; each commits on exit (writing what was published and
    audited) and rolls back on an exception."""

    def tenant(self, tenant: Tenant) -> AbstractAsyncContextManager[W_co]:
        """In ``tenant``'s own store, as the tenant (roles)."""
        ...

    def members(self, tenant: Tenant) -> AbstractAsyncContextManager[W_co]:
        """The platform tables seen as ``tenant`` (memberships, API clients; logins joined)."""
        ...

    def platform(self) -> AbstractAsyncContextManager[W_co]:
        """Explicit platform scope: logins themselves, finding an API client's tenant, a
        person's tenants, across tenants by design."""
        ...

    def reaches_platform(self, tenant: Tenant) -> bool:
        """Does a ``tenant(...)`` unit of work also reach the platform tables (the tenant's
        store is on the main database)? Then a login and its roles are one statement."""
        ...


class IdentityRepository(Protocol[W_contra]):
    """Identity's rows, inside the caller's unit of work (never opens, commits, publishes
    or audits)."""

    # -- logins (the token request) ---------------------------------------------------------
    async def login(self, uow: W_contra, email: str, *, with_actions: bool) -> Login | None:
        """The login of ``email`` in the unit's tenant (``members``; or ``tenant`` with
        ``with_actions``, which reads its roles' actions in the same statement)."""
        ...

    async def client_login(
        self, uow: W_contra, client_id: str, *, with_actions: bool
    ) -> ClientLogin | None:
        """The API client ``client_id`` (explicit platform scope: any tenant's; or in the
        unit's tenant, with ``with_actions`` in its own store as ``login``)."""
        ...

    async def role_actions(self, uow: W_contra, roles: Sequence[str]) -> list[str]: ...

    async def user_active(self, uow: W_contra, user_id: UUID) -> bool: ...

    async def client_active(self, uow: W_contra, client_id: str) -> bool: ...

    # -- logins and members -----------------------------------------------------------------
    async def user_id_by_email(self, uow: W_contra, email: str) -> UUID | None: ...

    async def create_user(
        self, uow: W_contra, email: str, password_hash: str, user_id: UUID
    ) -> UUID:
        """The new login's id, or the id of the login created concurrently with ``email``."""
        ...

    async def forget_onboarding_login(
        self, uow: W_contra, user_id: UUID, tenant_id: UUID
    ) -> bool: ...

    async def add_membership(self, uow: W_contra, user_id: UUID, roles: Sequence[str]) -> bool:
        """False: already a member."""
        ...

    async def members(self, uow: W_contra, query: Any) -> Page: ...

    async def member(self, uow: W_contra, user_id: UUID) -> Member | None: ...

    async def member_count(self, uow: W_contra) -> int: ...

    async def set_member_status(self, uow: W_contra, user_id: UUID, status: str) -> str | None:
        """The previous status (None: no such member)."""
        ...

    async def remove_membership(self, uow: W_contra, user_id: UUID) -> dict[str, Any] | None:
        """The removed membership's roles and status (None: no such member)."""
        ...

    async def my_tenants(self, uow: W_contra, user_id: UUID) -> list[dict[str, Any]]: ...

    # -- API clients ------------------------------------------------------------------------
    async def create_client(
        self,
        uow: W_contra,
        id_: UUID,
        client_id: str,
        secret_hash: str,
        name: str,
        roles: Sequence[str],
    ) -> ApiClient: ...

    async def clients(self, uow: W_contra) -> list[ApiClient]: ...

    async def set_client_status(self, uow: W_contra, id_: UUID, status: str) -> str | None:
        """The previous status (None: no such client)."""
        ...

    # -- roles (the tenant's store) ---------------------------------------------------------
    async def existing_roles(self, uow: W_contra, roles: Sequence[str]) -> set[str]: ...

    async def seed_roles(self, uow: W_contra, roles: dict[str, list[str]]) -> None: ...

    async def roles(self, uow: W_contra) -> list[dict[str, Any]]: ...

    async def role(self, uow: W_contra, name: str) -> dict[str, Any] | None: ...

    async def insert_role(
        self, uow: W_contra, name: str, actions: Sequence[str], description: str
    ) -> bool:
        """False: a role with that name exists."""
        ...

    async def update_role(
        self, uow: W_contra, name: str, actions: Sequence[str], description: str
    ) -> bool:
        """False: no such role."""
        ...

    async def delete_role(self, uow: W_contra, name: str) -> bool: ...

    async def roles_changed(self, uow: W_contra) -> None:
        """Every process drops its authorization cache for the tenant when ``uow`` commits."""
        ...


class ProfileCache(Protocol):
    """Member profiles kept in the platform cache (infrastructure/cache.py), per tenant and
    user: ``get`` reads through, ``drop`` after a change's commit (every process)."""

    async def get(
        self, tenant: Tenant, user_id: UUID, load: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> dict[str, Any] | None: ...

    async def drop(self, tenant: Tenant, user_id: UUID) -> None: ...
