"""The identity repository: its SQL, run in the unit of work the application service opened
(``IdentityRepository[UnitOfWork]``): never opens a transaction, publishes or audits.

Memberships and API clients are read and written in the platform tables seen as the tenant
(RLS and the unit of work's tenant filter limit them to its rows); roles in the tenant's own
store. Only logins themselves, finding an API client's tenant, "my tenants" and forgetting an
onboarding login run in explicit platform scope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from tenantry.capabilities import authz
from tenantry.capabilities.pagination import ListQuery
from tenantry.kernel.db.uow import UnitOfWork
from tenantry_identity.application.ports import ClientLogin, Login
from tenantry_identity.domain.model import ApiClient, Member, Status
from tenantry_identity.infrastructure import sql


def _client(r: asyncpg.Record) -> ApiClient:
    return ApiClient(
        r["id"], r["client_id"], r["name"], list(r["roles"]), Status(r["status"]), r["created_at"]
    )


class SqlIdentityRepository:
    # -- logins (the token request) ---------------------------------------------------------
    async def login(self, uow: UnitOfWork, email: str, *, with_actions: bool) -> Login | None:
        row = await uow.fetchrow(
            sql.LOGIN_ROW_WITH_ACTIONS if with_actions else sql.LOGIN_ROW, email
        )
        if row is None:
            return None
        return Login(
            row["user_id"],
            row["password_hash"],
            row["user_status"],
            row["member_status"],
            list(row["roles"]),
            list(row["actions"]) if with_actions else None,
        )

    async def client_login(
        self, uow: UnitOfWork, client_id: str, *, with_actions: bool
    ) -> ClientLogin | None:
        if with_actions:
            row = await uow.fetchrow(sql.CLIENT_ROW_WITH_ACTIONS, client_id)
            tenant_id = uow.tenant_id if row else None
        else:
            row = await uow.fetchrow(sql.CLIENT_ROW, client_id)
            tenant_id = row["tenant_id"] if row else None
        if row is None or tenant_id is None:
            return None
        return ClientLogin(
            tenant_id,
            row["client_id"],
            row["secret_hash"],
            row["status"],
            list(row["roles"]),
            list(row["actions"]) if with_actions else None,
        )

    async def role_actions(self, uow: UnitOfWork, roles: Sequence[str]) -> list[str]:
        return [r[0] for r in await uow.fetch(sql.ROLE_ACTIONS, list(roles))]

    async def user_active(self, uow: UnitOfWork, user_id: UUID) -> bool:
        return bool(await uow.fetchval(sql.USER_ACTIVE, user_id))

    async def client_active(self, uow: UnitOfWork, client_id: str) -> bool:
        return bool(await uow.fetchval(sql.CLIENT_ACTIVE, client_id))

    # -- logins and members -----------------------------------------------------------------
    async def user_id_by_email(self, uow: UnitOfWork, email: str) -> UUID | None:
        value: UUID | None = await uow.fetchval(sql.USER_BY_EMAIL, email)
        return value

    async def create_user(
        self, uow: UnitOfWork, email: str, password_hash: str, user_id: UUID
    ) -> UUID:
        new_id = await uow.fetchval(sql.INSERT_USER, user_id, email, password_hash)
        if new_id is None:  # created concurrently
            new_id = await uow.fetchval(sql.USER_BY_EMAIL, email)
        assert isinstance(new_id, UUID)
        return new_id

    async def forget_onboarding_login(
        self, uow: UnitOfWork, user_id: UUID, tenant_id: UUID
    ) -> bool:
        """Delete the login ``user_id`` if a failed onboarding of ``tenant_id`` created it
        and it belongs to no other tenant (see the identity migration 0003)."""
        return bool(await uow.fetchval(sql.FORGET_ONBOARDING_LOGIN, user_id, tenant_id))

    async def add_membership(self, uow: UnitOfWork, user_id: UUID, roles: Sequence[str]) -> bool:
        return await uow.fetchval(sql.INSERT_MEMBERSHIP, user_id, list(roles)) is not None

    async def members(self, uow: UnitOfWork, query: ListQuery) -> tuple[list[Member], str | None]:
        text, args = query.render(sql.LIST_MEMBERS)
        rows = await uow.fetch(text, *args)
        members = [
            Member(r["user_id"], r["email"], list(r["roles"]), Status(r["status"]), r["created_at"])
            for r in rows[: query.limit]
        ]
        return members, query.next_cursor(rows)

    async def member(self, uow: UnitOfWork, user_id: UUID) -> Member | None:
        r = await uow.fetchrow(sql.SELECT_MEMBER, user_id)
        if r is None:
            return None
        return Member(
            r["user_id"], r["email"], list(r["roles"]), Status(r["status"]), r["created_at"]
        )

    async def member_count(self, uow: UnitOfWork) -> int:
        return int(await uow.fetchval(sql.COUNT_MEMBERS))

    async def set_member_status(self, uow: UnitOfWork, user_id: UUID, status: str) -> str | None:
        old: str | None = await uow.fetchval(sql.SET_MEMBER_STATUS, user_id, status)
        return old

    async def remove_membership(self, uow: UnitOfWork, user_id: UUID) -> dict[str, Any] | None:
        old = await uow.fetchrow(sql.DELETE_MEMBERSHIP, user_id)
        return {"roles": list(old["roles"]), "status": old["status"]} if old else None

    async def my_tenants(self, uow: UnitOfWork, user_id: UUID) -> list[dict[str, Any]]:
        rows = await uow.fetch(sql.MY_TENANTS, user_id)
        return [
            {"id": str(r["id"]), "slug": r["slug"], "name": r["name"], "roles": list(r["roles"])}
            for r in rows
        ]

    # -- API clients ------------------------------------------------------------------------
    async def create_client(
        self,
        uow: UnitOfWork,
        id_: UUID,
        client_id: str,
        secret_hash: str,
        name: str,
        roles: Sequence[str],
    ) -> ApiClient:
        r = await uow.fetchrow(sql.INSERT_CLIENT, id_, client_id, secret_hash, name, list(roles))
        assert r is not None
        return _client(r)

    async def clients(self, uow: UnitOfWork) -> list[ApiClient]:
        return [_client(r) for r in await uow.fetch(sql.LIST_CLIENTS)]

    async def set_client_status(self, uow: UnitOfWork, id_: UUID, status: str) -> str | None:
        old: str | None = await uow.fetchval(sql.SET_CLIENT_STATUS, id_, status)
        return old

    # -- roles (the tenant's store) ---------------------------------------------------------
    async def existing_roles(self, uow: UnitOfWork, roles: Sequence[str]) -> set[str]:
        return {r[0] for r in await uow.fetch(sql.EXISTING_ROLES, list(roles))}

    async def seed_roles(self, uow: UnitOfWork, roles: dict[str, list[str]]) -> None:
        await uow.executemany(
            sql.UPSERT_ROLE,
            [(name, actions, "") for name, actions in sorted(roles.items())],
        )

    async def roles(self, uow: UnitOfWork) -> list[dict[str, Any]]:
        return [dict(r) for r in await uow.fetch(sql.LIST_ROLES)]

    async def role(self, uow: UnitOfWork, name: str) -> dict[str, Any] | None:
        row = await uow.fetchrow(sql.SELECT_ROLE, name)
        return dict(row) if row else None

    async def insert_role(
        self, uow: UnitOfWork, name: str, actions: Sequence[str], description: str
    ) -> bool:
        return await uow.fetchval(sql.INSERT_ROLE, name, list(actions), description) is not None

    async def update_role(
        self, uow: UnitOfWork, name: str, actions: Sequence[str], description: str
    ) -> bool:
        return await uow.fetchval(sql.UPDATE_ROLE, name, list(actions), description) is not None

    async def delete_role(self, uow: UnitOfWork, name: str) -> bool:
        return await uow.fetchval(sql.DELETE_ROLE, name) is not None

    async def roles_changed(self, uow: UnitOfWork) -> None:
        await authz.notify_change(uow)
