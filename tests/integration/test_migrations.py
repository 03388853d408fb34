"""Migrations: idempotent, concurrent-safe, lock_timeout, per-store failure and resume;
and the start-up self-check. Runs on its own database and roles (it breaks things on purpose).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tenantry.kernel.config import Settings, load_settings
from tenantry.kernel.db.dsn import with_database
from tenantry.kernel.db.migrator import Migration, Migrator, Store, load_migrations
from tenantry.kernel.db.privileged import admin_connection, admin_dsn, tenant_unit_of_work
from tenantry.kernel.db.uow import PLATFORM_SCHEMA
from tenantry.kernel.errors import MigrationError, SelfCheckError
from tenantry.kernel.platform import KERNEL_SOURCES, Platform
from tenantry.kernel.tenancy.model import SHARED_SCHEMA, IsolationMode
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tests.conftest import prepared_platform


@pytest.fixture(scope="module")
async def scratch(server_url: str) -> AsyncIterator[Platform]:
    run = secrets.token_hex(3)
    settings: Settings = load_settings(
        None,
        database={
            "url": with_database(server_url, f"tenantry_mig_{run}"),
            "app_user": "tenantry_mig_app",
            "app_password": "x",
            "owner_role": "tenantry_mig_owner",
            "pool_max": 4,
        },
    )
    async with prepared_platform(settings, start=False) as p:
        yield p


#: What a store recorded for the kernel's own migrations before their packages were renamed
#: (kernel/db/sql, kernel/messaging/sql and kernel/observability/sql became .../migrations):
#: (module, scope, version, name, checksum) as ``schema_migrations`` held them, read from a
#: database migrated by the tree of commit ab5a20d.
RECORDED_BEFORE_THE_RENAME = [
    ("kernel", "platform", 1, "catalog", "d5c43313c14c6b30"),
    ("kernel", "platform", 2, "platform_secrets", "cc9f1bc424541741"),
    ("observability", "platform", 1, "observability", "3a6fc54f7a061b79"),
    ("messaging", "platform", 1, "sagas", "5205a26a13800744"),
    ("messaging", "tenant", 1, "outbox_inbox", "17398249228297a1"),
    ("jobs", "tenant", 1, "jobs", "192ae8bb5644d341"),
]


def probe(version: int, sql: str) -> Migration:
    return Migration("probe", "tenant", version, f"probe_{version}", sql)


def test_recorded_identity_is_the_source_name_not_the_package() -> None:
    """An applied migration is known by (source name, version) and its checksum; the package
    it is read from appears nowhere, so each one recorded before the rename is found again,
    unchanged (neither re-run nor refused as edited)."""
    loaded = {
        (m.module, m.scope, m.version, m.name, m.checksum)
        for source, package in KERNEL_SOURCES
        for m in load_migrations(source, package)
    }
    assert set(RECORDED_BEFORE_THE_RENAME) <= loaded
    assert not [row for row in loaded if any("." in str(part) for part in row)]


async def test_store_migrated_before_the_rename_is_not_migrated_again(scratch: Platform) -> None:
    """The kernel's rows of the platform store and the shared schema, written as the old
    layout wrote them: a new run applies nothing and counts nothing pending."""
    async with admin_connection(scratch.db) as conn, conn.transaction():
        for schema, scope in ((PLATFORM_SCHEMA, "platform"), (SHARED_SCHEMA, "tenant")):
            # the rows of those migrations only: migrations added since stay recorded
            mine = [(m, v) for m, where, v, _, _ in RECORDED_BEFORE_THE_RENAME if where == scope]
            await conn.execute(
                f"DELETE FROM {schema}.schema_migrations WHERE (module, version) IN"
                " (SELECT * FROM unnest($1::text[], $2::int[]))",
                [m for m, _ in mine],
                [v for _, v in mine],
            )
            await conn.executemany(
                f"INSERT INTO {schema}.schema_migrations (module, version, name, checksum)"
                " VALUES ($1, $2, $3, $4)",
                [
                    (module, version, name, checksum)
                    for module, where, version, name, checksum in RECORDED_BEFORE_THE_RENAME
                    if where == scope
                ],
            )
    report = await scratch.prepare()
    assert report.ok, report.failed
    assert report.applied_count == 0, report.applied
    assert await scratch.migrator.pending_count(await scratch.catalog.all()) == 0


async def test_second_run_applies_nothing(scratch: Platform) -> None:
    report = await scratch.prepare()
    assert report.ok
    assert report.applied_count == 0


async def test_concurrent_runs_apply_once(scratch: Platform) -> None:
    mig = probe(1, "CREATE TABLE conc_probe (tenant_id uuid NOT NULL, v int)")
    store = Store("concurrency probe", "tenant", "default", None, "tenant_conc_probe")
    runners = [Migrator(scratch.db, [mig], ["probe"]) for _ in range(4)]
    results = await asyncio.gather(*(r.migrate_store(store) for r in runners))
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    async with admin_connection(scratch.db, as_owner=False) as conn:
        # the new tenant-owned table got its policies from the runner, not from the SQL
        assert await conn.fetchval(
            "SELECT relforcerowsecurity FROM pg_class WHERE oid = 'tenant_conc_probe.conc_probe'"
            "::regclass"
        )
        await conn.execute("DROP SCHEMA tenant_conc_probe CASCADE")


async def test_lock_timeout_fails_fast_and_a_rerun_resumes(scratch: Platform) -> None:
    store = Store("lock probe", "tenant", "default", None, "tenant_lock_probe")
    first = Migrator(scratch.db, [probe(1, "CREATE TABLE lp (tenant_id uuid NOT NULL)")], ["probe"])
    await first.migrate_store(store)
    both = Migrator(
        scratch.db,
        [
            probe(1, "CREATE TABLE lp (tenant_id uuid NOT NULL)"),
            probe(2, "ALTER TABLE lp ADD COLUMN x int"),
        ],
        ["probe"],
    )
    scratch.db.settings.lock_timeout_ms = 300
    blocker = await asyncpg.connect(admin_dsn(scratch.db))
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE tenant_lock_probe.lp IN ACCESS SHARE MODE")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(MigrationError, match=r"lock probe.*0002_probe_2"):
            await both.migrate_store(store)
        assert loop.time() - t0 < 5
        await tx.rollback()
    finally:
        await blocker.close()
        scratch.db.settings.lock_timeout_ms = 5000
    assert await both.migrate_store(store) == ["probe/0002_probe_2"]
    async with admin_connection(scratch.db, as_owner=False) as conn:
        await conn.execute("DROP SCHEMA tenant_lock_probe CASCADE")


async def test_failed_tenant_is_named_and_others_go_on(scratch: Platform) -> None:
    good = (
        await scratch.provisioner.create(ProvisionRequest("mig-good", "Good", IsolationMode.SCHEMA))
    ).tenant
    bad = (
        await scratch.provisioner.create(ProvisionRequest("mig-bad", "Bad", IsolationMode.SCHEMA))
    ).tenant
    async with admin_connection(scratch.db) as conn:
        await conn.execute("CREATE TABLE tenant_mig_bad.marker (x int)")
    boom = probe(
        7,
        "DO $$ BEGIN IF to_regclass('marker') IS NOT NULL THEN "
        "RAISE EXCEPTION 'boom'; END IF; END $$; CREATE TABLE p7 (x int)",
    )
    migrator = Migrator(scratch.db, [boom], ["probe"])
    report = await migrator.migrate_all([good, bad])
    assert list(report.failed) == ["tenant mig-bad (schema)"]
    assert "boom" in report.failed["tenant mig-bad (schema)"]
    assert "tenant mig-good (schema)" in report.applied
    async with admin_connection(scratch.db) as conn:
        await conn.execute("DROP TABLE tenant_mig_bad.marker")
    again = await migrator.migrate_all([good, bad])
    assert again.ok
    assert list(again.applied) == ["tenant mig-bad (schema)"]


async def test_edited_migration_is_refused(scratch: Platform) -> None:
    store = Store("edit probe", "tenant", "default", None, "tenant_edit_probe")
    await Migrator(scratch.db, [probe(1, "CREATE TABLE e (x int)")], ["probe"]).migrate_store(store)
    edited = Migrator(
        scratch.db, [probe(1, "CREATE TABLE e (x bigint)"), probe(2, "SELECT 1")], ["probe"]
    )
    with pytest.raises(MigrationError, match="edited after it was applied"):
        await edited.migrate_store(store)


async def test_self_check_names_every_problem(scratch: Platform) -> None:
    s = scratch.settings.database
    assert await scratch.check() == []
    async with admin_connection(scratch.db) as conn:
        await conn.execute("CREATE TABLE tenant_shared.leaky (tenant_id uuid NOT NULL)")
    async with admin_connection(scratch.db, as_owner=False) as conn:
        await conn.execute(f'ALTER ROLE "{s.app_user}" BYPASSRLS')
        await conn.execute("CREATE TABLE tenant_shared.owned (tenant_id uuid)")
        await conn.execute(f'ALTER TABLE tenant_shared.owned OWNER TO "{s.app_user}"')
    try:
        problems = "\n".join(await scratch.check())
        assert "tenant_shared.leaky: RLS not enabled, RLS not forced" in problems
        assert "BYPASSRLS" in problems
        assert "owns tenant_shared.owned" in problems
        with pytest.raises(SelfCheckError, match=r"tenant_shared\.leaky"):
            await scratch.start(listen=False)
    finally:
        async with admin_connection(scratch.db, as_owner=False) as conn:
            await conn.execute(f'ALTER ROLE "{s.app_user}" NOBYPASSRLS')
            await conn.execute("DROP TABLE tenant_shared.leaky, tenant_shared.owned")
    assert await scratch.check() == []


async def test_database_tenant_on_a_named_server(scratch: Platform, server_url: str) -> None:
    """database.servers lets database-mode tenants live on another server (here: the same
    one under a second name, which is what the routing code cannot tell apart)."""
    from tenantry.kernel.config import ServerSettings

    scratch.db._servers["second"] = ServerSettings(url=server_url).url
    res = await scratch.provisioner.create(
        ProvisionRequest("mig-far", "Far", IsolationMode.DATABASE, server="second")
    )
    assert res.tenant.server == "second"
    async with tenant_unit_of_work(scratch.db, res.tenant) as uow:
        assert await uow.fetchval("SELECT current_database()") == res.tenant.database
        assert await uow.fetchval("SELECT count(*) FROM roles") >= 1


@pytest.mark.parametrize("mode", ["shared", "schema", "database"])
async def test_failed_provisioning_leaves_nothing(scratch: Platform, mode: str) -> None:
    async def failing(kind: str, where: str) -> None:
        if where == "done:admin":  # the admin login exists: its compensation must remove it
            raise RuntimeError("seed failed")

    slug = f"mig-fail-{mode[:2]}"
    scratch.sagas.inject = failing
    try:
        with pytest.raises(RuntimeError, match="seed failed"):
            await scratch.provisioner.create(
                ProvisionRequest(
                    slug,
                    "Fail",
                    IsolationMode(mode),
                    options={"admin_email": f"a@{slug}.test", "admin_password": "x" * 12},
                )
            )
    finally:
        scratch.sagas.inject = None
    async with admin_connection(scratch.db, as_owner=False) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM tenantry.tenants WHERE slug = $1", slug) == 0
        )
        assert not await conn.fetchval(
            "SELECT to_regnamespace($1) IS NOT NULL", "tenant_" + slug.replace("-", "_")
        )
        assert not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            "tenantry_t_" + slug.replace("-", "_"),
        )
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM tenantry.memberships m JOIN tenantry.users u "
                "ON u.id = m.user_id WHERE u.email = $1",
                f"a@{slug}.test",
            )
            == 0
        )


async def test_bad_provisioning_input(scratch: Platform) -> None:
    from tenantry.kernel.errors import Conflict, ValidationFailed

    for slug in ("A", "ab", "-abc", "abc-", "has space", "x" * 41):
        with pytest.raises(ValidationFailed):
            await scratch.provisioner.create(ProvisionRequest(slug, "N"))
    await scratch.provisioner.create(ProvisionRequest("mig-dup", "N"))
    with pytest.raises(Conflict):
        await scratch.provisioner.create(ProvisionRequest("mig-dup", "N"))


async def test_pending_count_covers_every_store(scratch: Platform) -> None:
    tenants = await scratch.catalog.all()
    assert any(t.database for t in tenants)
    assert await scratch.migrator.pending_count(tenants) == 0
    extra = probe(1, "CREATE TABLE pend (x int)")
    migrator = Migrator(
        scratch.db,
        [*scratch.migrator.migrations, extra],
        ["kernel", *(m.name for m in scratch.modules), "probe"],
    )
    tenant_stores = 1 + sum(1 for t in tenants if t.database or t.schema != "tenant_shared")
    assert await migrator.pending_count(tenants) == tenant_stores
