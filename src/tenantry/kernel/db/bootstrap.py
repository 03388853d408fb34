"""Creates what must exist before the first migration: the database and the two roles.

Runs with the admin URL (a superuser, or a role with CREATEROLE and CREATEDB). The owner role
owns every schema and table and cannot log in; the application role logs in, owns nothing and
has neither SUPERUSER nor BYPASSRLS. Statements are built with ``format(%I, %L)`` on the server,
so role names and the password are quoted by PostgreSQL itself.
"""

from __future__ import annotations

import asyncpg

from tenantry.kernel.config import DatabaseSettings
from tenantry.kernel.db import sql as q
from tenantry.kernel.db.dsn import database_of, redact, with_database
from tenantry.kernel.errors import ConfigError


async def _run_formatted(conn: asyncpg.Connection, template: str, *args: str) -> None:
    stmt = await conn.fetchval(q.FORMAT_VARIADIC_STMT, template, list(args))
    await conn.execute(stmt)


async def ensure_database(admin_url: str, owner_role: str | None = None) -> None:
    """Create the URL's database if it does not exist (connecting to ``postgres``)."""
    name = database_of(admin_url)
    try:
        conn = await asyncpg.connect(admin_url)
    except asyncpg.InvalidCatalogNameError:
        pass
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to {redact(admin_url)}: {exc}") from exc
    else:
        await conn.close()
        return
    conn = await asyncpg.connect(with_database(admin_url, "postgres"))
    try:
        if not await conn.fetchval(q.DATABASE_EXISTS, name):
            await _run_formatted(conn, "CREATE DATABASE %I", name)
    except asyncpg.DuplicateDatabaseError:
        pass  # created concurrently
    finally:
        await conn.close()


async def ensure_roles(conn: asyncpg.Connection, s: DatabaseSettings) -> None:
    """Create or correct the owner and application roles; grant what each needs."""
    lock = "SELECT pg_advisory_xact_lock(hashtext('tenantry.roles'))"
    async with conn.transaction():
        await conn.execute(lock)
        if not await conn.fetchval(q.ROLE_EXISTS, s.owner_role):
            await _run_formatted(conn, "CREATE ROLE %I NOLOGIN", s.owner_role)
        if not await conn.fetchval(q.ROLE_EXISTS, s.app_user):
            await _run_formatted(
                conn,
                "CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
                s.app_user,
                s.app_password,
            )
        else:
            await _run_formatted(
                conn,
                "ALTER ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
                s.app_user,
                s.app_password,
            )
        is_super = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not is_super:
            # The admin must be able to SET ROLE to the owner.
            await _run_formatted(conn, "GRANT %I TO current_user", s.owner_role)
        db = await conn.fetchval("SELECT current_database()")
        await _run_formatted(
            conn, "GRANT CREATE, CONNECT, TEMP ON DATABASE %I TO %I", db, s.owner_role
        )
        await _run_formatted(conn, "GRANT CONNECT, TEMP ON DATABASE %I TO %I", db, s.app_user)


async def create_tenant_database(conn: asyncpg.Connection, name: str, s: DatabaseSettings) -> None:
    """CREATE DATABASE for a database-mode tenant (cannot run inside a transaction)."""
    if not await conn.fetchval(q.DATABASE_EXISTS, name):
        await _run_formatted(conn, "CREATE DATABASE %I OWNER %I", name, s.owner_role)
    await _run_formatted(conn, "REVOKE ALL ON DATABASE %I FROM PUBLIC", name)
    await _run_formatted(conn, "GRANT CONNECT, TEMP ON DATABASE %I TO %I", name, s.app_user)


async def drop_tenant_database(conn: asyncpg.Connection, name: str) -> None:
    await _run_formatted(conn, "DROP DATABASE IF EXISTS %I WITH (FORCE)", name)
