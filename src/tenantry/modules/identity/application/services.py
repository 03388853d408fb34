"""Identity use cases: tokens, members, API clients, roles.

Authentication failures all end in the same ``Unauthorized`` message and spend the same
password-hashing time, so a caller cannot tell an unknown tenant, an unknown user, a wrong
password or a disabled user apart.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from tenantry.kernel.auth.actions import refuse_platform_grants
from tenantry.kernel.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from tenantry.kernel.tenancy.model import Tenant, TenantStatus
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry.modules.identity.application.onboarding import NEW_ADMIN_USER_ID
from tenantry.modules.identity.application.ports import PasswordHasher
from tenantry.modules.identity.domain.model import (
    ADMIN_ROLE,
    ApiClient,
    DomainError,
    Member,
    check_password,
    check_role_names,
    normalize_email,
)

if TYPE_CHECKING:
    from tenantry.capabilities.pagination import ListQuery

BAD_CREDENTIALS = "invalid credentials"


class IdentityRepository(Protocol):
    async def tenant_by_slug(self, slug: str) -> Tenant | None: ...
    async def tenant_by_id(self, tenant_id: UUID) -> Tenant | None: ...
    async def login_row(self, tenant: Tenant, email: str) -> dict[str, Any] | None: ...
    async def client_row(self, client_id: str) -> dict[str, Any] | None: ...
    async def role_actions(self, tenant: Tenant, roles: list[str]) -> list[str]: ...
    async def existing_roles(self, tenant: Tenant, roles: list[str]) -> set[str]: ...
    async def seed_roles(self, uow: Any, roles: dict[str, list[str]]) -> None: ...
    async def user_id_by_email(self, email: str) -> UUID | None: ...
    async def create_user(
        self, email: str, password_hash: str, user_id: UUID | None = None
    ) -> UUID: ...
    async def forget_onboarding_login(self, user_id: UUID, tenant_id: UUID) -> bool: ...
    async def add_membership(
        self,
        tenant: Tenant,
        user_id: UUID,
        roles: list[str],
        email: str = "",
        *,
        onboarding: bool = False,
    ) -> bool:
        """Add the membership; publishes ``UserAddedToTenant`` in the same transaction."""
        ...

    async def members(
        self, tenant: Tenant, query: ListQuery
    ) -> tuple[list[Member], str | None]: ...
    async def set_member_status(self, tenant: Tenant, user_id: UUID, status: str) -> bool: ...
    async def remove_membership(self, tenant: Tenant, user_id: UUID) -> bool: ...
    async def create_client(
        self, tenant: Tenant, client_id: str, secret_hash: str, name: str, roles: list[str]
    ) -> ApiClient: ...
    async def clients(self, tenant: Tenant) -> list[ApiClient]: ...
    async def set_client_status(self, tenant: Tenant, id_: UUID, status: str) -> bool: ...
    async def my_tenants(self, user_id: UUID) -> list[dict[str, Any]]: ...
    async def roles(self, tenant: Tenant) -> list[dict[str, Any]]: ...
    async def member_count(self, tenant: Tenant) -> int: ...
    async def save_role(
        self, tenant: Tenant, name: str, actions: list[str], description: str, *, create: bool
    ) -> bool: ...
    async def delete_role(self, tenant: Tenant, name: str) -> bool: ...


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


class SecretHasher(Protocol):
    def __call__(self, secret: str) -> str: ...


@dataclass(frozen=True)
class TokenResult:
    access_token: str
    expires_in: int
    scope: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


def _invalid(exc: DomainError) -> ValidationFailed:
    return ValidationFailed(str(exc), errors=[{"field": exc.field, "message": str(exc)}])


class IdentityService:
    def __init__(
        self,
        repo: IdentityRepository,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        expand: Any,
        secret_hasher: SecretHasher,
        secret_matches: Any,
        is_operator_tenant: Callable[[str | None], bool] = lambda _slug: False,
    ) -> None:
        self.repo = repo
        self.hasher = hasher
        self.tokens = tokens
        self.expand = expand  # role actions -> scopes (platform.expand_actions)
        self.secret_hasher = secret_hasher
        self.secret_matches = secret_matches
        #: Only the operator tenant's roles may grant platform actions (kernel/auth/actions).
        self.is_operator_tenant = is_operator_tenant

    # -- tokens -----------------------------------------------------------------------------
    async def password_grant(self, username: str, password: str, tenant_slug: str) -> TokenResult:
        try:
            email = normalize_email(username)
        except DomainError:
            email = ""
        tenant = await self.repo.tenant_by_slug(tenant_slug) if tenant_slug else None
        row = None
        if tenant is not None and tenant.status is TenantStatus.ACTIVE and email:
            row = await self.repo.login_row(tenant, email)
        ok = await self.hasher.verify(password, row["password_hash"] if row else None)
        if not ok or row is None or tenant is None:
            raise Unauthorized(BAD_CREDENTIALS, error="invalid_grant")
        if row["user_status"] != "active" or row["member_status"] != "active":
            raise Unauthorized(BAD_CREDENTIALS, error="invalid_grant")
        roles = list(row["roles"])
        scopes = self.expand(await self.repo.role_actions(tenant, roles), tenant.slug)
        token, ttl = await self.tokens.issue(
            subject=str(row["user_id"]), tenant_id=tenant.id, roles=roles, scopes=scopes
        )
        return TokenResult(token, ttl, " ".join(scopes))

    async def client_credentials_grant(self, client_id: str, secret: str) -> TokenResult:
        row = await self.repo.client_row(client_id) if client_id else None
        ok = self.secret_matches(secret, row["secret_hash"] if row else None)
        if not ok or row is None or row["status"] != "active":
            raise Unauthorized(BAD_CREDENTIALS, error="invalid_client")
        tenant = await self.repo.tenant_by_id(row["tenant_id"])
        if tenant is None or tenant.status is not TenantStatus.ACTIVE:
            raise Unauthorized(BAD_CREDENTIALS, error="invalid_client")
        roles = list(row["roles"])
        scopes = self.expand(await self.repo.role_actions(tenant, roles), tenant.slug)
        token, ttl = await self.tokens.issue(
            subject=f"client:{client_id}",
            tenant_id=tenant.id,
            roles=roles,
            scopes=scopes,
            kind="client",
        )
        return TokenResult(token, ttl, " ".join(scopes))

    # -- members ----------------------------------------------------------------------------
    async def _check_roles(self, tenant: Tenant, roles: list[str]) -> list[str]:
        try:
            roles = check_role_names(roles)
        except DomainError as exc:
            raise _invalid(exc) from None
        unknown = set(roles) - await self.repo.existing_roles(tenant, roles)
        if unknown:
            # a reference to something this tenant does not have: 404, as an unknown id is
            raise NotFound(
                f"unknown roles: {', '.join(sorted(unknown))}",
                errors=[
                    {"field": "roles", "message": f"unknown role {r!r}"} for r in sorted(unknown)
                ],
            )
        return roles

    async def add_member(
        self,
        tenant: Tenant,
        email: str,
        password: str | None,
        roles: list[str],
        *,
        check_roles: bool = True,
        onboarding: bool = False,
        new_user_id: UUID | None = None,
    ) -> tuple[UUID, bool]:
        """Add a person to the tenant; create their login if they have none (with the id
        ``new_user_id`` when given). (id, created)."""
        try:
            email = normalize_email(email)
        except DomainError as exc:
            raise _invalid(exc) from None
        if check_roles:
            roles = await self._check_roles(tenant, roles)
        user_id = await self.repo.user_id_by_email(email)
        created = False
        if user_id is None:
            if password is None:
                # no login has this e-mail: adding an existing person needs none, so this
                # names a login that does not exist (404, as an unknown id)
                raise NotFound(
                    "no login has this e-mail; give a password to create one",
                    errors=[{"field": "password", "message": "required for a new login"}],
                )
            try:
                check_password(password)
            except DomainError as exc:
                raise _invalid(exc) from None
            user_id = await self.repo.create_user(
                email, await self.hasher.hash(password), new_user_id
            )
            created = True
        if not await self.repo.add_membership(tenant, user_id, roles, email, onboarding=onboarding):
            raise Conflict(f"{email} is already a member of this tenant")
        return user_id, created

    async def set_member_status(
        self, tenant: Tenant, user_id: UUID, status: str, *, by: str | None = None
    ) -> None:
        """Enable or disable a membership. Disabling yourself is refused, as removing yourself
        is: it locks the caller out, and it is how a tenant loses its last admin."""
        if status == "disabled" and by == str(user_id):
            raise Conflict("you cannot disable yourself")
        if not await self.repo.set_member_status(tenant, user_id, status):
            raise NotFound("no such user in this tenant")

    async def remove_member(self, tenant: Tenant, user_id: UUID, by: str | None) -> None:
        """Take a user out of the tenant; their tokens stop working at once (kernel/auth/
        status). Removing yourself is refused: it is how a tenant loses its last admin."""
        if by == str(user_id):
            raise Conflict("you cannot remove yourself from the tenant")
        if not await self.repo.remove_membership(tenant, user_id):
            raise NotFound("no such user in this tenant")

    # -- API clients ------------------------------------------------------------------------
    async def create_client(
        self, tenant: Tenant, name: str, roles: list[str]
    ) -> tuple[ApiClient, str]:
        if not name.strip() or len(name) > 200:
            raise ValidationFailed("name must be 1-200 characters", errors=[{"field": "name"}])
        roles = await self._check_roles(tenant, roles)
        client_id = "tc_" + secrets.token_urlsafe(18)
        secret = secrets.token_urlsafe(32)
        client = await self.repo.create_client(
            tenant, client_id, self.secret_hasher(secret), name.strip(), roles
        )
        return client, secret

    async def set_client_status(self, tenant: Tenant, id_: UUID, status: str) -> None:
        if not await self.repo.set_client_status(tenant, id_, status):
            raise NotFound("no such API client in this tenant")

    # -- roles ------------------------------------------------------------------------------
    async def save_role(
        self,
        tenant: Tenant,
        name: str,
        actions: list[str],
        description: str,
        known: Any,
        *,
        create: bool,
    ) -> None:
        """Create or replace a role; ``known``: the declared permissions (actions may also be
        ``*`` or ``module:*``). The ``admin`` role cannot be changed (no lock-out). Outside
        the operator tenant a role cannot grant a platform action, nor ``*`` or
        ``platform:*`` (422 ``platform-action``)."""
        try:
            (name,) = check_role_names([name])
        except DomainError as exc:
            raise _invalid(exc) from None
        if name == ADMIN_ROLE:
            raise Conflict("the admin role cannot be changed")
        if not self.is_operator_tenant(tenant.slug):
            refuse_platform_grants(actions)
        bad = [a for a in actions if not (a == "*" or a.endswith(":*") or a in known)]
        if bad:
            raise ValidationFailed(
                f"unknown actions: {', '.join(bad)}",
                errors=[{"field": "actions", "message": f"unknown action {a!r}"} for a in bad],
            )
        actions = sorted(set(actions))
        if not await self.repo.save_role(tenant, name, actions, description, create=create):
            if create:
                raise Conflict(f"a role named {name!r} already exists")
            raise NotFound(f"no role named {name!r}")

    async def delete_role(self, tenant: Tenant, name: str) -> None:
        if name == ADMIN_ROLE:
            raise Conflict("the admin role cannot be deleted")
        if not await self.repo.delete_role(tenant, name):
            raise NotFound(f"no role named {name!r}")

    # -- provisioning -----------------------------------------------------------------------
    @staticmethod
    def check_onboarding_request(req: ProvisionRequest) -> None:
        """The provisioner's check of the admin options, before anything is written."""
        email, password = req.options.get("admin_email"), req.options.get("admin_password")
        try:
            if password and not email:
                raise DomainError("admin_password", "an admin password needs an admin e-mail")
            if email:
                normalize_email(str(email))
            if password:
                check_password(str(password))
        except DomainError as exc:
            field = exc.field if exc.field.startswith("admin_") else f"admin_{exc.field}"
            msg = f"{field}: {exc}"
            raise ValidationFailed(msg, errors=[{"field": field, "message": str(exc)}]) from None

    async def seed_tenant(
        self, uow: Any, tenant: Tenant, options: dict[str, Any], default_roles: dict[str, list[str]]
    ) -> dict[str, Any]:
        await self.repo.seed_roles(uow, {ADMIN_ROLE: ["*"], **default_roles})
        email = options.get("admin_email")
        if not email:
            return {}
        password = options.get("admin_password") or secrets.token_urlsafe(12)
        new_id = options.get(NEW_ADMIN_USER_ID)
        user_id, created = await self.add_member(
            tenant,
            email,
            password,
            [ADMIN_ROLE],
            check_roles=False,
            onboarding=True,
            new_user_id=UUID(str(new_id)) if new_id else None,
        )
        out: dict[str, Any] = {"admin_user_id": str(user_id), "admin_email": normalize_email(email)}
        if created and not options.get("admin_password"):
            out["admin_password"] = password
        return out

    async def unseed_tenant(self, tenant_id: UUID, options: dict[str, Any]) -> None:
        """The compensation of ``seed_tenant`` (a failed onboarding): remove the admin login
        it created, so the next attempt with that e-mail sets its own password. A login that
        existed before (another id) or that meanwhile joined another tenant stays. The roles
        go with the tenant's store, the membership with the catalog row."""
        new_id = options.get(NEW_ADMIN_USER_ID)
        if new_id:
            await self.repo.forget_onboarding_login(UUID(str(new_id)), tenant_id)
