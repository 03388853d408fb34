"""Identity use cases: tokens, members, API clients, roles.

Every use case opens its unit of work from the factory the service was given
(``IdentityUnits``: the tenant's store, the platform tables seen as the tenant, or explicit
platform scope), asks the domain to decide and the repository to read and write inside that
unit of work, and records on it what happened: ``UserAddedToTenant`` / ``ApiClientCreated``
events (``uow.publish``) and audit records (``uow.audit``), which the kernel writes at commit
in the same transaction. It returns domain results or raises domain errors
(``IdentityError`` kinds, application/errors.py); HTTP is the routes' business.

Authentication failures all raise the same ``InvalidCredentials`` and spend the same
password-hashing time, so a caller cannot tell an unknown tenant, an unknown user, a wrong
password or a disabled user apart.

The token request is one unit of work when it can be: the tenant comes from the catalog's
cache, and for a tenant whose store is on the main database the login, its membership and its
roles' actions are read in one statement (a database-mode tenant's roles are elsewhere: a
second unit of work, only after the password was verified).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic
from uuid import UUID

from tenantry.kernel.auth.actions import platform_grants
from tenantry.kernel.db.ports import W
from tenantry.kernel.tenancy.context import Principal
from tenantry.kernel.tenancy.model import Tenant, TenantStatus
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry_identity.application.errors import (
    Conflict,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    PlatformGrantRefused,
)
from tenantry_identity.application.onboarding import NEW_ADMIN_USER_ID
from tenantry_identity.application.ports import (
    ClientLogin,
    IdentityRepository,
    IdentityUnits,
    Login,
    Page,
    PasswordHasher,
    ProfileCache,
    SecretHasher,
    SecretMatches,
    Tenants,
    TokenIssuer,
)
from tenantry_identity.contracts import ApiClientCreated, UserAddedToTenant
from tenantry_identity.domain.model import (
    ADMIN_ROLE,
    ApiClient,
    DomainError,
    Member,
    check_password,
    check_role_names,
    normalize_email,
)

#: Role actions -> token scopes (``registrar.expand_actions``).
Expand = Callable[[Sequence[str], str | None], list[str]]
#: How many API clients' tenants the service remembers (the token request's shortcut).
CLIENT_TENANTS_MAX = 10_000


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


def _invalid(exc: DomainError) -> InvalidInput:
    return InvalidInput(str(exc), [{"field": exc.field, "message": str(exc)}])


class IdentityService(Generic[W]):
    def __init__(
        self,
        units: IdentityUnits[W],
        repository: IdentityRepository[W],
        tenants: Tenants,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        expand: Expand,
        secret_hasher: SecretHasher,
        secret_matches: SecretMatches,
        is_operator_tenant: Callable[[str | None], bool] = lambda _slug: False,
        profiles: ProfileCache | None = None,
    ) -> None:
        #: Opens units of work (kernel: infrastructure/units.KernelUnits over ``Database``).
        self.units = units
        self.repository = repository
        self.tenants = tenants
        self.hasher = hasher
        self.tokens = tokens
        self.expand = expand
        self.secret_hasher = secret_hasher
        self.secret_matches = secret_matches
        #: Only the operator tenant's roles may grant platform actions (kernel/auth/actions).
        self.is_operator_tenant = is_operator_tenant
        #: Member profiles in the platform cache (None: read the tables every time).
        self.profiles = profiles
        #: client_id -> its tenant (never changes): a known client's grant is one unit of work.
        self._client_tenants: dict[str, UUID] = {}

    # -- tokens -----------------------------------------------------------------------------
    async def password_grant(self, username: str, password: str, tenant_slug: str) -> TokenResult:
        try:
            email = normalize_email(username)
        except DomainError:
            email = ""
        tenant = await self.tenants.by_slug(tenant_slug) if tenant_slug else None
        login = None
        if tenant is not None and tenant.status is TenantStatus.ACTIVE and email:
            login = await self._login(tenant, email)
        ok = await self.hasher.verify(password, login.password_hash if login else None)
        if not ok or login is None or tenant is None:
            raise InvalidCredentials("password")
        if login.user_status != "active" or login.member_status != "active":
            raise InvalidCredentials("password")
        actions = login.actions
        if actions is None:
            actions = await self._role_actions(tenant, login.roles)
        scopes = self.expand(actions, tenant.slug)
        token, ttl = await self.tokens.issue(
            subject=str(login.user_id), tenant_id=tenant.id, roles=login.roles, scopes=scopes
        )
        return TokenResult(token, ttl, " ".join(scopes))

    async def _login(self, tenant: Tenant, email: str) -> Login | None:
        if self.units.reaches_platform(tenant):
            async with self.units.tenant(tenant) as uow:
                return await self.repository.login(uow, email, with_actions=True)
        async with self.units.members(tenant) as uow:
            return await self.repository.login(uow, email, with_actions=False)

    async def _role_actions(self, tenant: Tenant, roles: Sequence[str]) -> list[str]:
        async with self.units.tenant(tenant) as uow:
            return await self.repository.role_actions(uow, roles)

    async def client_credentials_grant(self, client_id: str, secret: str) -> TokenResult:
        login = await self._client_login(client_id) if client_id else None
        ok = self.secret_matches(secret, login.secret_hash if login else None)
        if not ok or login is None or login.status != "active":
            raise InvalidCredentials("client_credentials")
        tenant = await self.tenants.by_id(login.tenant_id)
        if tenant is None or tenant.status is not TenantStatus.ACTIVE:
            raise InvalidCredentials("client_credentials")
        actions = login.actions
        if actions is None:
            actions = await self._role_actions(tenant, login.roles)
        if self.units.reaches_platform(tenant):
            self._remember_client(client_id, tenant.id)
        scopes = self.expand(actions, tenant.slug)
        token, ttl = await self.tokens.issue(
            subject=f"client:{client_id}",
            tenant_id=tenant.id,
            roles=login.roles,
            scopes=scopes,
            kind="client",
        )
        return TokenResult(token, ttl, " ".join(scopes))

    async def _client_login(self, client_id: str) -> ClientLogin | None:
        """The client's row: in its tenant's store with its roles' actions when its tenant is
        known and reachable in one statement, else found in explicit platform scope."""
        tenant_id = self._client_tenants.get(client_id)
        if tenant_id is not None:
            tenant = await self.tenants.by_id(tenant_id)
            if tenant is not None and tenant.status is TenantStatus.ACTIVE:
                async with self.units.tenant(tenant) as uow:
                    found = await self.repository.client_login(uow, client_id, with_actions=True)
                if found is not None:
                    return found
        async with self.units.platform() as uow:
            return await self.repository.client_login(uow, client_id, with_actions=False)

    def _remember_client(self, client_id: str, tenant_id: UUID) -> None:
        if client_id in self._client_tenants:
            return
        if len(self._client_tenants) >= CLIENT_TENANTS_MAX:
            self._client_tenants.pop(next(iter(self._client_tenants)))  # oldest first
        self._client_tenants[client_id] = tenant_id

    async def principal_active(self, tenant: Tenant, principal: Principal) -> bool:
        """Is the token's user (active login, active membership) or API client (active) still
        allowed into ``tenant``? One query; the kernel asks on a principal-status cache miss."""
        if principal.kind == "client":
            key = principal.subject.removeprefix("client:")
            if key == principal.subject:
                return False
            async with self.units.members(tenant) as uow:
                return await self.repository.client_active(uow, key)
        try:
            user_id = UUID(principal.subject)
        except ValueError:
            return False
        async with self.units.members(tenant) as uow:
            return await self.repository.user_active(uow, user_id)

    # -- members ----------------------------------------------------------------------------
    async def _check_roles(self, tenant: Tenant, roles: list[str]) -> list[str]:
        try:
            roles = check_role_names(roles)
        except DomainError as exc:
            raise _invalid(exc) from None
        async with self.units.tenant(tenant) as uow:
            unknown = set(roles) - await self.repository.existing_roles(uow, roles)
        if unknown:
            # a reference to something this tenant does not have: 404, as an unknown id is
            raise NotFound(
                f"unknown roles: {', '.join(sorted(unknown))}",
                [{"field": "roles", "message": f"unknown role {r!r}"} for r in sorted(unknown)],
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
        async with self.units.platform() as uow:
            user_id = await self.repository.user_id_by_email(uow, email)
        created = False
        if user_id is None:
            if password is None:
                # no login has this e-mail: adding an existing person needs none, so this
                # names a login that does not exist (404, as an unknown id)
                raise NotFound(
                    "no login has this e-mail; give a password to create one",
                    [{"field": "password", "message": "required for a new login"}],
                )
            try:
                check_password(password)
            except DomainError as exc:
                raise _invalid(exc) from None
            hashed = await self.hasher.hash(password)  # outside any transaction (CPU)
            async with self.units.platform() as uow:
                user_id = await self.repository.create_user(
                    uow, email, hashed, new_user_id or uuid.uuid4()
                )
            created = True
        async with self.units.members(tenant) as uow:
            if not await self.repository.add_membership(uow, user_id, roles):
                raise Conflict(f"{email} is already a member of this tenant")
            uow.audit("identity.member.add", f"user:{user_id}", after={"roles": sorted(roles)})
            uow.publish(
                UserAddedToTenant(
                    user_id=user_id, email=email, roles=sorted(roles), onboarding=onboarding
                )
            )
        await self._profile_changed(tenant, user_id)
        return user_id, created

    async def member_profile(self, tenant: Tenant, user_id: UUID) -> dict[str, Any]:
        """One member's profile (id, email, roles, status, created_at as ISO text); 404 when
        ``user_id`` is no member of ``tenant``. Through the profile cache when there is one."""

        async def load() -> dict[str, Any] | None:
            async with self.units.members(tenant) as uow:
                m = await self.repository.member(uow, user_id)
            return None if m is None else profile_of(m)

        found = await (self.profiles.get(tenant, user_id, load) if self.profiles else load())
        if found is None:
            raise NotFound("no such user in this tenant")
        return found

    async def _profile_changed(self, tenant: Tenant, user_id: UUID) -> None:
        """After the change's commit: the cached profile goes, in every process."""
        if self.profiles is not None:
            await self.profiles.drop(tenant, user_id)

    async def members(self, tenant: Tenant, query: Any) -> Page:
        """One page of the tenant's members (the filter engine's ``ListQuery``)."""
        async with self.units.members(tenant) as uow:
            return await self.repository.members(uow, query)

    async def member_count(self, tenant: Tenant) -> int:
        """Active members (the ``max_users`` entitlement's usage)."""
        async with self.units.members(tenant) as uow:
            return await self.repository.member_count(uow)

    async def my_tenants(self, principal: Principal) -> list[dict[str, Any]]:
        """The tenants the principal's login is an active member of (none for a client)."""
        if principal.kind != "user":
            return []
        async with self.units.platform() as uow:
            return await self.repository.my_tenants(uow, UUID(principal.subject))

    async def set_member_status(
        self, tenant: Tenant, user_id: UUID, status: str, *, by: str | None = None
    ) -> None:
        """Enable or disable a membership. Disabling yourself is refused, as removing yourself
        is: it locks the caller out, and it is how a tenant loses its last admin."""
        if status == "disabled" and by == str(user_id):
            raise Conflict("you cannot disable yourself")
        async with self.units.members(tenant) as uow:
            old = await self.repository.set_member_status(uow, user_id, status)
            if old is None:
                raise NotFound("no such user in this tenant")
            uow.audit(
                "identity.member.status",
                f"user:{user_id}",
                before={"status": old},
                after={"status": status},
            )
        await self._profile_changed(tenant, user_id)

    async def remove_member(self, tenant: Tenant, user_id: UUID, by: str | None) -> None:
        """Take a user out of the tenant (the login stays: it may belong to others); their
        tokens stop working at once (kernel/auth/status). Removing yourself is refused: it is
        how a tenant loses its last admin."""
        if by == str(user_id):
            raise Conflict("you cannot remove yourself from the tenant")
        async with self.units.members(tenant) as uow:
            old = await self.repository.remove_membership(uow, user_id)
            if old is None:
                raise NotFound("no such user in this tenant")
            uow.audit("identity.member.remove", f"user:{user_id}", before=old, after=None)
        await self._profile_changed(tenant, user_id)

    # -- API clients ------------------------------------------------------------------------
    async def create_client(
        self, tenant: Tenant, name: str, roles: list[str]
    ) -> tuple[ApiClient, str]:
        """A new API client of ``tenant`` and its secret (shown once, stored hashed)."""
        if not name.strip() or len(name) > 200:
            raise InvalidInput("name must be 1-200 characters", [{"field": "name"}])
        roles = await self._check_roles(tenant, roles)
        client_id = "tc_" + secrets.token_urlsafe(18)
        secret = secrets.token_urlsafe(32)
        name = name.strip()
        async with self.units.members(tenant) as uow:
            client = await self.repository.create_client(
                uow, uuid.uuid4(), client_id, self.secret_hasher(secret), name, roles
            )
            uow.audit(
                "identity.client.create",
                f"client:{client_id}",
                after={"name": name, "roles": sorted(roles)},
            )
            uow.publish(ApiClientCreated(client_id=client_id, name=name, roles=sorted(roles)))
        return client, secret

    async def clients(self, tenant: Tenant) -> list[ApiClient]:
        async with self.units.members(tenant) as uow:
            return await self.repository.clients(uow)

    async def set_client_status(self, tenant: Tenant, id_: UUID, status: str) -> None:
        async with self.units.members(tenant) as uow:
            old = await self.repository.set_client_status(uow, id_, status)
            if old is None:
                raise NotFound("no such API client in this tenant")
            uow.audit(
                "identity.client.status",
                f"client:{id_}",
                before={"status": old},
                after={"status": status},
            )

    # -- roles ------------------------------------------------------------------------------
    async def roles(self, tenant: Tenant) -> list[dict[str, Any]]:
        async with self.units.tenant(tenant) as uow:
            return await self.repository.roles(uow)

    async def save_role(
        self,
        tenant: Tenant,
        name: str,
        actions: list[str],
        description: str,
        known: Mapping[str, str],
        *,
        create: bool,
    ) -> None:
        """Create or replace a role; ``known``: the declared permissions (actions may also be
        ``*`` or ``module:*``). The ``admin`` role cannot be changed (no lock-out). Outside
        the operator tenant a role cannot grant a platform action, nor ``*`` or
        ``platform:*`` (``PlatformGrantRefused``). Audited; every process's authorization
        cache for the tenant is dropped on commit."""
        try:
            (name,) = check_role_names([name])
        except DomainError as exc:
            raise _invalid(exc) from None
        if name == ADMIN_ROLE:
            raise Conflict("the admin role cannot be changed")
        if not self.is_operator_tenant(tenant.slug) and platform_grants(actions):
            raise PlatformGrantRefused(actions)
        bad = [a for a in actions if not (a == "*" or a.endswith(":*") or a in known)]
        if bad:
            raise InvalidInput(
                f"unknown actions: {', '.join(bad)}",
                [{"field": "actions", "message": f"unknown action {a!r}"} for a in bad],
            )
        actions = sorted(set(actions))
        repo = self.repository
        async with self.units.tenant(tenant) as uow:
            before = await repo.role(uow, name)
            write = repo.insert_role if create else repo.update_role
            if not await write(uow, name, actions, description):
                if create:
                    raise Conflict(f"a role named {name!r} already exists")
                raise NotFound(f"no role named {name!r}")
            uow.audit(
                "identity.role.create" if create else "identity.role.update",
                f"role:{name}",
                before=before,
                after={"name": name, "actions": actions, "description": description},
            )
            await repo.roles_changed(uow)

    async def delete_role(self, tenant: Tenant, name: str) -> None:
        if name == ADMIN_ROLE:
            raise Conflict("the admin role cannot be deleted")
        async with self.units.tenant(tenant) as uow:
            before = await self.repository.role(uow, name)
            if before is None or not await self.repository.delete_role(uow, name):
                raise NotFound(f"no role named {name!r}")
            uow.audit("identity.role.delete", f"role:{name}", before=before)
            await self.repository.roles_changed(uow)

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
            raise InvalidInput(f"{field}: {exc}", [{"field": field, "message": str(exc)}]) from None

    async def seed_tenant(
        self, uow: W, tenant: Tenant, options: dict[str, Any], default_roles: dict[str, list[str]]
    ) -> dict[str, Any]:
        """The onboarding step's work in the saga's unit of work (the new tenant's store):
        the roles, then (with ``admin_email``) the first admin."""
        await self.repository.seed_roles(uow, {ADMIN_ROLE: ["*"], **default_roles})
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
            async with self.units.platform() as uow:
                await self.repository.forget_onboarding_login(uow, UUID(str(new_id)), tenant_id)


__all__ = ["IdentityService", "TokenResult"]


def profile_of(m: Member) -> dict[str, Any]:
    """A member as the API shows it (JSON types: what the cache returns too)."""
    return {
        "id": str(m.user_id),
        "email": m.email,
        "roles": m.roles,
        "status": m.status.value,
        "created_at": m.created_at.isoformat(),
    }
