"""The identity repository over the kernel's units of work.

Memberships and API clients are read and written as the tenant (RLS limits them to its rows);
only login-by-client-id and "my tenants" use explicit platform scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from tenantry.capabilities import audit, authz
from tenantry.capabilities.pagination import ListQuery
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.tenancy.catalog import TenantCatalog
from tenantry.kernel.tenancy.context import Principal
from tenantry.kernel.tenancy.model import Tenant
from tenantry.modules.identity.contracts import ApiClientCreated, UserAddedToTenant
from tenantry.modules.identity.domain.model import ApiClient, Member, Status
from tenantry.modules.identity.infrastructure import sql

#: Writes an integration event to the outbox in the given unit of work (the dispatcher's
#: ``publish``): the event commits or rolls back with the change it describes.
Publish = Callable[[UnitOfWork, Any], Awaitable[Any]]


async def _no_publish(uow: UnitOfWork, event: Any) -> None:
    return None


class SqlIdentityRepository:
    def __init__(self, db: Database, catalog: TenantCatalog, publish: Publish | None = None):
        self.db = db
        self.catalog = catalog
        self.publish = publish or _no_publish

    async def tenant_by_slug(self, slug: str) -> Tenant | None:
        return await self.catalog.by_slug(slug)

    async def tenant_by_id(self, tenant_id: UUID) -> Tenant | None:
        return await self.catalog.get(tenant_id)

    async def login_row(self, tenant: Tenant, email: str) -> dict[str, Any] | None:
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            row = await uow.fetchrow(sql.LOGIN_ROW, email)
        return dict(row) if row else None

    async def client_row(self, client_id: str) -> dict[str, Any] | None:
        async with self.db.platform_unit_of_work() as uow:
            row = await uow.fetchrow(sql.CLIENT_ROW, client_id)
        return dict(row) if row else None

    async def role_actions(self, tenant: Tenant, roles: list[str]) -> list[str]:
        async with self.db.tenant_unit_of_work(tenant) as uow:
            return [r[0] for r in await uow.fetch(sql.ROLE_ACTIONS, roles)]

    async def existing_roles(self, tenant: Tenant, roles: list[str]) -> set[str]:
        async with self.db.tenant_unit_of_work(tenant) as uow:
            return {r[0] for r in await uow.fetch(sql.EXISTING_ROLES, roles)}

    async def seed_roles(self, uow: UnitOfWork, roles: dict[str, list[str]]) -> None:
        await uow.executemany(
            sql.UPSERT_ROLE,
            [(name, actions, "") for name, actions in sorted(roles.items())],
        )

    async def roles(self, tenant: Tenant) -> list[dict[str, Any]]:
        async with self.db.tenant_unit_of_work(tenant) as uow:
            return [dict(r) for r in await uow.fetch(sql.LIST_ROLES)]

    async def save_role(
        self, tenant: Tenant, name: str, actions: list[str], description: str, *, create: bool
    ) -> bool:
        """Create (False if it exists) or replace (False if missing) a role; audited, and
        every process's authorization cache for the tenant is dropped on commit."""
        async with self.db.tenant_unit_of_work(tenant) as uow:
            before = await uow.fetchrow(sql.SELECT_ROLE, name)
            if create:
                done = await uow.fetchval(sql.INSERT_ROLE, name, actions, description)
            else:
                done = await uow.fetchval(sql.UPDATE_ROLE, name, actions, description)
            if done is None:
                return False
            await audit.record(
                uow,
                action="identity.role.create" if create else "identity.role.update",
                resource=f"role:{name}",
                before=dict(before) if before else None,
                after={"name": name, "actions": actions, "description": description},
            )
            await authz.notify_change(uow)
        return True

    async def delete_role(self, tenant: Tenant, name: str) -> bool:
        async with self.db.tenant_unit_of_work(tenant) as uow:
            before = await uow.fetchrow(sql.SELECT_ROLE, name)
            if before is None:
                return False
            await uow.execute(sql.DELETE_ROLE, name)
            await audit.record(
                uow, action="identity.role.delete", resource=f"role:{name}", before=dict(before)
            )
            await authz.notify_change(uow)
        return True

    async def user_id_by_email(self, email: str) -> UUID | None:
        async with self.db.platform_unit_of_work() as uow:
            value: UUID | None = await uow.fetchval(sql.USER_BY_EMAIL, email)
            return value

    async def create_user(
        self, email: str, password_hash: str, user_id: UUID | None = None
    ) -> UUID:
        async with self.db.platform_unit_of_work() as uow:
            new_id = await uow.fetchval(
                sql.INSERT_USER, user_id or uuid.uuid4(), email, password_hash
            )
            if new_id is None:  # created concurrently
                new_id = await uow.fetchval(sql.USER_BY_EMAIL, email)
        assert isinstance(new_id, UUID)
        return new_id

    async def forget_onboarding_login(self, user_id: UUID, tenant_id: UUID) -> bool:
        """Delete the login ``user_id`` if a failed onboarding of ``tenant_id`` created it
        and it belongs to no other tenant (see the identity migration 0003)."""
        async with self.db.platform_unit_of_work() as uow:
            return bool(await uow.fetchval(sql.FORGET_ONBOARDING_LOGIN, user_id, tenant_id))

    async def add_membership(
        self,
        tenant: Tenant,
        user_id: UUID,
        roles: list[str],
        email: str = "",
        *,
        onboarding: bool = False,
    ) -> bool:
        """Add the membership, audited, and publish ``UserAddedToTenant`` in its transaction."""
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            added = await uow.fetchval(sql.INSERT_MEMBERSHIP, user_id, roles)
            if added is not None:
                await audit.record(
                    uow,
                    action="identity.member.add",
                    resource=f"user:{user_id}",
                    after={"roles": sorted(roles)},
                )
                await self.publish(
                    uow,
                    UserAddedToTenant(
                        user_id=user_id, email=email, roles=sorted(roles), onboarding=onboarding
                    ),
                )
            return added is not None

    async def members(self, tenant: Tenant, query: ListQuery) -> tuple[list[Member], str | None]:
        text, args = query.render(sql.LIST_MEMBERS)
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            rows = await uow.fetch(text, *args)
        members = [
            Member(r["user_id"], r["email"], list(r["roles"]), Status(r["status"]), r["created_at"])
            for r in rows[: query.limit]
        ]
        return members, query.next_cursor(rows)

    async def member_count(self, tenant: Tenant) -> int:
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            return int(await uow.fetchval(sql.COUNT_MEMBERS))

    async def principal_active(self, tenant: Tenant, principal: Principal) -> bool:
        """Is the token's user (active login, active membership) or API client (active)
        still allowed into ``tenant``? One query; called on a principal-status cache miss."""
        if principal.kind == "client":
            query, key = sql.CLIENT_ACTIVE, principal.subject.removeprefix("client:")
            if key == principal.subject:
                return False
            args: tuple[Any, ...] = (key,)
        else:
            try:
                args = (UUID(principal.subject),)
            except ValueError:
                return False
            query = sql.USER_ACTIVE
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            return bool(await uow.fetchval(query, *args))

    async def remove_membership(self, tenant: Tenant, user_id: UUID) -> bool:
        """Take the user out of the tenant (the login stays: it may belong to others)."""
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            old = await uow.fetchrow(sql.DELETE_MEMBERSHIP, user_id)
            if old is not None:
                await audit.record(
                    uow,
                    action="identity.member.remove",
                    resource=f"user:{user_id}",
                    before={"roles": list(old["roles"]), "status": old["status"]},
                    after=None,
                )
            return old is not None

    async def set_member_status(self, tenant: Tenant, user_id: UUID, status: str) -> bool:
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            old = await uow.fetchval(sql.SET_MEMBER_STATUS, user_id, status)
            if old is not None:
                await audit.record(
                    uow,
                    action="identity.member.status",
                    resource=f"user:{user_id}",
                    before={"status": old},
                    after={"status": status},
                )
            return old is not None

    async def create_client(
        self, tenant: Tenant, client_id: str, secret_hash: str, name: str, roles: list[str]
    ) -> ApiClient:
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            r = await uow.fetchrow(
                sql.INSERT_CLIENT, uuid.uuid4(), client_id, secret_hash, name, roles
            )
            assert r is not None
            await audit.record(
                uow,
                action="identity.client.create",
                resource=f"client:{client_id}",
                after={"name": name, "roles": sorted(roles)},
            )
            await self.publish(
                uow, ApiClientCreated(client_id=client_id, name=name, roles=sorted(roles))
            )
        return _client(r)

    async def clients(self, tenant: Tenant) -> list[ApiClient]:
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            return [_client(r) for r in await uow.fetch(sql.LIST_CLIENTS)]

    async def set_client_status(self, tenant: Tenant, id_: UUID, status: str) -> bool:
        async with self.db.platform_unit_of_work(as_tenant=tenant) as uow:
            old = await uow.fetchval(sql.SET_CLIENT_STATUS, id_, status)
            if old is not None:
                await audit.record(
                    uow,
                    action="identity.client.status",
                    resource=f"client:{id_}",
                    before={"status": old},
                    after={"status": status},
                )
            return old is not None

    async def my_tenants(self, user_id: UUID) -> list[dict[str, Any]]:
        async with self.db.platform_unit_of_work() as uow:
            rows = await uow.fetch(sql.MY_TENANTS, user_id)
        return [
            {"id": str(r["id"]), "slug": r["slug"], "name": r["name"], "roles": list(r["roles"])}
            for r in rows
        ]


def _client(r: Any) -> ApiClient:
    return ApiClient(
        r["id"], r["client_id"], r["name"], list(r["roles"]), Status(r["status"]), r["created_at"]
    )
