"""In-memory fakes of identity's units of work, repository, catalog, hasher and token issuer:
``IdentityService`` runs on them exactly as on PostgreSQL (the protocols of
identity/application/ports.py), without a database.

``FakeUnits`` opens the three kinds of unit of work identity uses (the tenant's store, the
platform tables seen as the tenant, explicit platform scope). Each works on a copy of the
state and publishes it, with the events and audit records collected on it, only when its block
ends without an exception (a rollback leaves nothing, as in the database). The repository
checks that each row is reached from a unit of work that can reach it (roles only in the
tenant's store; memberships and clients in the platform tables seen as the tenant, or from
the tenant's store when it is on the main database; logins in platform scope), so a service
that opened the wrong kind fails here as it would on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tenantry.kernel.tenancy.model import IsolationMode, Tenant, TenantStatus
from tenantry.testing import fakes
from tenantry_identity.application.ports import ClientLogin, Login, Page
from tenantry_identity.application.services import IdentityService
from tenantry_identity.domain.model import ApiClient, Member, Status


def make_tenant(
    slug: str,
    *,
    isolation: IsolationMode = IsolationMode.SHARED,
    status: TenantStatus = TenantStatus.ACTIVE,
) -> Tenant:
    database = f"tenantry_t_{slug}" if isolation is IsolationMode.DATABASE else None
    return Tenant(
        id=uuid.uuid4(),
        slug=slug,
        name=slug.title(),
        isolation=isolation,
        status=status,
        plan="free",
        server="default",
        database=database,
        schema="tenant_shared",
        created_at=datetime.now(UTC),
    )


@dataclass
class State:
    """Every row identity has: logins, memberships, API clients, roles."""

    users: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    memberships: dict[tuple[UUID, UUID], dict[str, Any]] = field(default_factory=dict)
    clients: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    roles: dict[tuple[UUID, str], dict[str, Any]] = field(default_factory=dict)


class FakeUnitOfWork(fakes.FakeUnitOfWork[State]):
    """The platform's fake unit of work (tenantry.testing.fakes) of one of identity's kinds;
    events and audit records belong to a tenant."""

    def __init__(self, state: State, kind: str, tenant: Tenant | None) -> None:
        super().__init__(state, readonly=False)
        #: "tenant" (the tenant's store), "members" (platform tables as the tenant), "platform"
        self.kind = kind
        self.tenant = tenant
        self.notified = 0

    @property
    def tenant_id(self) -> UUID:
        assert self.tenant is not None, "platform unit of work has no tenant"
        return self.tenant.id

    def publish_many(self, events: Sequence[Any]) -> list[UUID]:
        assert self.tenant is not None, "messages belong to a tenant (platform unit of work)"
        return super().publish_many(events)

    def audit(
        self,
        action: str,
        resource: str | None = None,
        *,
        before: Any = None,
        after: Any = None,
        outcome: str = "success",
        details: Any = None,
    ) -> None:
        assert self.tenant is not None, "audit records belong to a tenant"
        super().audit(
            action, resource, before=before, after=after, outcome=outcome, details=details
        )


#: What each kind of unit of work writes: the tenant's store its roles, the platform tables
#: seen as the tenant its memberships and clients, platform scope the logins.
WRITES = {"tenant": ("roles",), "members": ("memberships", "clients"), "platform": ("users",)}


class FakeUnits:
    """``IdentityUnits[FakeUnitOfWork]``: commits copy the state back and keep what was
    collected; ``opened`` lists the kind of every unit of work, in order."""

    def __init__(self) -> None:
        self.state = State()
        self.events: list[Any] = []
        self.audits: list[dict[str, Any]] = []
        self.notified = 0
        self.opened: list[str] = []
        self.rollbacks = 0

    @contextlib.asynccontextmanager
    async def _open(self, kind: str, tenant: Tenant | None) -> AsyncIterator[FakeUnitOfWork]:
        self.opened.append(kind)
        uow = FakeUnitOfWork(copy.deepcopy(self.state), kind, tenant)
        try:
            yield uow
        except BaseException:
            self.rollbacks += 1
            raise
        # each kind writes back only the tables it can write (units of work nest here, as
        # the onboarding step's does: a unit committing later must not undo another's rows)
        for table in WRITES[kind]:
            setattr(self.state, table, getattr(uow.state, table))
        self.events.extend(uow.events)
        self.audits.extend(uow.audits)
        self.notified += uow.notified

    def tenant(self, tenant: Tenant) -> contextlib.AbstractAsyncContextManager[FakeUnitOfWork]:
        return self._open("tenant", tenant)

    def members(self, tenant: Tenant) -> contextlib.AbstractAsyncContextManager[FakeUnitOfWork]:
        return self._open("members", tenant)

    def platform(self) -> contextlib.AbstractAsyncContextManager[FakeUnitOfWork]:
        return self._open("platform", None)

    def reaches_platform(self, tenant: Tenant) -> bool:
        return tenant.database is None


def _platform_as_tenant(uow: FakeUnitOfWork) -> UUID:
    """The tenant whose memberships and clients ``uow`` sees (members, or the tenant's store
    when it is on the main database)."""
    assert uow.tenant is not None, f"tenant rows from a {uow.kind} unit of work"
    assert uow.kind == "members" or (uow.kind == "tenant" and uow.tenant.database is None), (
        f"platform tables from a {uow.kind} unit of work of {uow.tenant.slug}"
    )
    return uow.tenant.id


def _store(uow: FakeUnitOfWork) -> UUID:
    assert uow.kind == "tenant", f"roles from a {uow.kind} unit of work"
    return uow.tenant_id


def _platform(uow: FakeUnitOfWork) -> None:
    assert uow.kind == "platform", f"logins from a {uow.kind} unit of work"


def _client(c: dict[str, Any]) -> ApiClient:
    return ApiClient(
        c["id"], c["client_id"], c["name"], list(c["roles"]), Status(c["status"]), c["created_at"]
    )


class FakeIdentityRepository:
    """``IdentityRepository[FakeUnitOfWork]``: the SQL repository's behaviour on dicts."""

    def _actions(self, st: State, tenant_id: UUID, roles: Sequence[str]) -> list[str]:
        found = {a for r in roles for a in st.roles.get((tenant_id, r), {}).get("actions", [])}
        return sorted(found)

    async def login(self, uow: FakeUnitOfWork, email: str, *, with_actions: bool) -> Login | None:
        tid = _platform_as_tenant(uow)
        if with_actions:
            _store(uow)
        st = uow.state
        for user_id, u in st.users.items():
            m = st.memberships.get((tid, user_id))
            if u["email"] == email and m is not None:
                return Login(
                    user_id,
                    u["password_hash"],
                    u["status"],
                    m["status"],
                    list(m["roles"]),
                    self._actions(st, tid, m["roles"]) if with_actions else None,
                )
        return None

    async def client_login(
        self, uow: FakeUnitOfWork, client_id: str, *, with_actions: bool
    ) -> ClientLogin | None:
        if with_actions:
            tid: UUID | None = _platform_as_tenant(uow)
            _store(uow)
        else:
            _platform(uow)
            tid = None
        for c in uow.state.clients.values():
            if c["client_id"] == client_id and tid in (None, c["tenant_id"]):
                actions = self._actions(uow.state, c["tenant_id"], c["roles"])
                return ClientLogin(
                    c["tenant_id"],
                    client_id,
                    c["secret_hash"],
                    c["status"],
                    list(c["roles"]),
                    actions if with_actions else None,
                )
        return None

    async def role_actions(self, uow: FakeUnitOfWork, roles: Sequence[str]) -> list[str]:
        return self._actions(uow.state, _store(uow), roles)

    async def user_active(self, uow: FakeUnitOfWork, user_id: UUID) -> bool:
        tid = _platform_as_tenant(uow)
        u, m = uow.state.users.get(user_id), uow.state.memberships.get((tid, user_id))
        return bool(u and m and u["status"] == "active" and m["status"] == "active")

    async def client_active(self, uow: FakeUnitOfWork, client_id: str) -> bool:
        tid = _platform_as_tenant(uow)
        return any(
            c["client_id"] == client_id and c["tenant_id"] == tid and c["status"] == "active"
            for c in uow.state.clients.values()
        )

    async def user_id_by_email(self, uow: FakeUnitOfWork, email: str) -> UUID | None:
        _platform(uow)
        return next((i for i, u in uow.state.users.items() if u["email"] == email), None)

    async def create_user(
        self, uow: FakeUnitOfWork, email: str, password_hash: str, user_id: UUID
    ) -> UUID:
        existing = await self.user_id_by_email(uow, email)
        if existing is not None:
            return existing
        uow.state.users[user_id] = {
            "email": email,
            "password_hash": password_hash,
            "status": "active",
        }
        return user_id

    async def forget_onboarding_login(
        self, uow: FakeUnitOfWork, user_id: UUID, tenant_id: UUID
    ) -> bool:
        _platform(uow)
        others = [t for (t, u) in uow.state.memberships if u == user_id and t != tenant_id]
        if others or user_id not in uow.state.users:
            return False
        del uow.state.users[user_id]  # (its membership goes with the catalog row)
        return True

    async def add_membership(
        self, uow: FakeUnitOfWork, user_id: UUID, roles: Sequence[str]
    ) -> bool:
        key = (_platform_as_tenant(uow), user_id)
        if key in uow.state.memberships:
            return False
        uow.state.memberships[key] = {
            "roles": list(roles),
            "status": "active",
            "created_at": datetime.now(UTC),
        }
        return True

    async def members(self, uow: FakeUnitOfWork, query: Any) -> Page:
        tid = _platform_as_tenant(uow)
        st = uow.state
        items = [
            Member(u, st.users[u]["email"], list(m["roles"]), Status(m["status"]), m["created_at"])
            for (t, u), m in st.memberships.items()
            if t == tid
        ]
        return sorted(items, key=lambda m: m.email), None

    async def member(self, uow: FakeUnitOfWork, user_id: UUID) -> Member | None:
        tid = _platform_as_tenant(uow)
        st = uow.state
        m = st.memberships.get((tid, user_id))
        if m is None:
            return None
        u = st.users[user_id]
        return Member(user_id, u["email"], list(m["roles"]), Status(m["status"]), m["created_at"])

    async def member_count(self, uow: FakeUnitOfWork) -> int:
        tid = _platform_as_tenant(uow)
        return sum(
            1 for (t, _), m in uow.state.memberships.items() if t == tid and m["status"] == "active"
        )

    async def set_member_status(
        self, uow: FakeUnitOfWork, user_id: UUID, status: str
    ) -> str | None:
        m = uow.state.memberships.get((_platform_as_tenant(uow), user_id))
        if m is None:
            return None
        old: str = m["status"]
        m["status"] = status
        return old

    async def remove_membership(self, uow: FakeUnitOfWork, user_id: UUID) -> dict[str, Any] | None:
        m = uow.state.memberships.pop((_platform_as_tenant(uow), user_id), None)
        return {"roles": list(m["roles"]), "status": m["status"]} if m else None

    async def my_tenants(self, uow: FakeUnitOfWork, user_id: UUID) -> list[dict[str, Any]]:
        _platform(uow)
        return [
            {"id": str(t), "roles": list(m["roles"])}
            for (t, u), m in uow.state.memberships.items()
            if u == user_id and m["status"] == "active"
        ]

    async def create_client(
        self,
        uow: FakeUnitOfWork,
        id_: UUID,
        client_id: str,
        secret_hash: str,
        name: str,
        roles: Sequence[str],
    ) -> ApiClient:
        c = {
            "id": id_,
            "tenant_id": _platform_as_tenant(uow),
            "client_id": client_id,
            "secret_hash": secret_hash,
            "name": name,
            "roles": list(roles),
            "status": "active",
            "created_at": datetime.now(UTC),
        }
        uow.state.clients[id_] = c
        return _client(c)

    async def clients(self, uow: FakeUnitOfWork) -> list[ApiClient]:
        tid = _platform_as_tenant(uow)
        return [_client(c) for c in uow.state.clients.values() if c["tenant_id"] == tid]

    async def set_client_status(self, uow: FakeUnitOfWork, id_: UUID, status: str) -> str | None:
        c = uow.state.clients.get(id_)
        if c is None or c["tenant_id"] != _platform_as_tenant(uow):
            return None
        old: str = c["status"]
        c["status"] = status
        return old

    async def existing_roles(self, uow: FakeUnitOfWork, roles: Sequence[str]) -> set[str]:
        tid = _store(uow)
        return {r for r in roles if (tid, r) in uow.state.roles}

    async def seed_roles(self, uow: FakeUnitOfWork, roles: dict[str, list[str]]) -> None:
        tid = _store(uow)
        for name, actions in roles.items():
            uow.state.roles.setdefault((tid, name), {"actions": list(actions), "description": ""})

    async def roles(self, uow: FakeUnitOfWork) -> list[dict[str, Any]]:
        tid = _store(uow)
        return [{"name": n, **r} for (t, n), r in sorted(uow.state.roles.items()) if t == tid]

    async def role(self, uow: FakeUnitOfWork, name: str) -> dict[str, Any] | None:
        r = uow.state.roles.get((_store(uow), name))
        return {"name": name, **r} if r else None

    async def insert_role(
        self, uow: FakeUnitOfWork, name: str, actions: Sequence[str], description: str
    ) -> bool:
        key = (_store(uow), name)
        if key in uow.state.roles:
            return False
        uow.state.roles[key] = {"actions": list(actions), "description": description}
        return True

    async def update_role(
        self, uow: FakeUnitOfWork, name: str, actions: Sequence[str], description: str
    ) -> bool:
        key = (_store(uow), name)
        if key not in uow.state.roles:
            return False
        uow.state.roles[key] = {"actions": list(actions), "description": description}
        return True

    async def delete_role(self, uow: FakeUnitOfWork, name: str) -> bool:
        return uow.state.roles.pop((_store(uow), name), None) is not None

    async def roles_changed(self, uow: FakeUnitOfWork) -> None:
        _store(uow)
        uow.notified += 1


class FakeTenants:
    """The catalog (``Tenants``): ``lookups`` counts the calls."""

    def __init__(self, *tenants: Tenant) -> None:
        self.tenants = {t.id: t for t in tenants}
        self.lookups = 0

    def add(self, tenant: Tenant) -> Tenant:
        self.tenants[tenant.id] = tenant
        return tenant

    async def by_slug(self, slug: str) -> Tenant | None:
        self.lookups += 1
        return next((t for t in self.tenants.values() if t.slug == slug), None)

    async def by_id(self, tenant_id: UUID) -> Tenant | None:
        self.lookups += 1
        return self.tenants.get(tenant_id)


class FakeHasher:
    """``PasswordHasher``: ``verified`` records whether each verify had a real hash (the
    service must spend the verify whatever the cause of a failure)."""

    def __init__(self) -> None:
        self.verified: list[bool] = []

    async def hash(self, password: str) -> str:
        return "h:" + password

    async def verify(self, password: str, hashed: str | None) -> bool:
        self.verified.append(hashed is not None)
        return hashed is not None and hashed == "h:" + password


class FakeTokens:
    def __init__(self) -> None:
        self.issued: list[dict[str, Any]] = []

    async def issue(
        self,
        *,
        subject: str,
        tenant_id: UUID,
        roles: list[str],
        scopes: list[str],
        kind: str = "user",
    ) -> tuple[str, int]:
        claims = {"sub": subject, "tenant_id": tenant_id, "roles": roles, "scopes": scopes}
        self.issued.append({**claims, "kind": kind})
        return f"token-{len(self.issued)}", 900


def expand(actions: Sequence[str], tenant_slug: str | None = None) -> list[str]:
    return sorted(set(actions))


def hash_secret(secret: str) -> str:
    return "s:" + secret


def secret_matches(secret: str, stored: str | None) -> bool:
    return stored is not None and stored == "s:" + secret


@dataclass
class Fakes:
    service: IdentityService[FakeUnitOfWork]
    units: FakeUnits
    tenants: FakeTenants
    hasher: FakeHasher
    tokens: FakeTokens


def fake_service(*tenants: Tenant, operator: str | None = None) -> Fakes:
    units, cat, hasher, tokens = FakeUnits(), FakeTenants(*tenants), FakeHasher(), FakeTokens()
    service = IdentityService(
        units,
        FakeIdentityRepository(),
        cat,
        hasher,
        tokens,
        expand,
        hash_secret,
        secret_matches,
        lambda slug: slug is not None and slug == operator,
    )
    return Fakes(service, units, cat, hasher, tokens)


__all__ = ["FakeIdentityRepository", "FakeUnits", "Fakes", "fake_service", "make_tenant"]
