"""Sagas: the onboarding saga with a failure injected at each step leaves nothing behind;
a saga interrupted mid-way (as by a crash) is resumed; POST /api/v1/platform/tenants and the
CLI views."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenantry.kernel.config import Settings
from tenantry.kernel.db.privileged import admin_connection, tenant_unit_of_work
from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.messaging.saga import SagaDefinition, SagaFailed, SagaStore, Step
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode
from tenantry.kernel.tenancy.onboarding import KIND
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry_ledger.infrastructure.onboarding import seed_chart
from tests.conftest import PASSWORD, RUN, get_token

STEPS = ["record", "storage", "chart_of_accounts", "admin", "activate", "welcome"]


class Injected(RuntimeError):
    pass


class Crash(BaseException):
    """Stops a saga where it stands, like a killed process (no compensation runs)."""


@pytest.fixture
async def onboarding(probed: Platform) -> AsyncIterator[Platform]:
    """The module's platform (the ledger and identity modules contribute their steps); the
    injection hook is cleared afterwards."""
    assert [s.name for s in probed.sagas.definitions[KIND].steps] == STEPS
    try:
        yield probed
    finally:
        probed.sagas.inject = None


async def chart_codes(platform: Platform, tenant_id: uuid.UUID, schema: str) -> list[str]:
    async with admin_connection(platform.db, as_owner=False) as conn:
        if not await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema):
            return []
        rows = await conn.fetch(
            f'SELECT code FROM "{schema}".ledger_accounts'
            " WHERE tenant_id = $1 AND metadata->>'seeded' IS NOT NULL ORDER BY code",
            tenant_id,
        )
    return [r["code"] for r in rows]


async def leftovers(platform: Platform, slug: str, tenant_id: uuid.UUID | None) -> list[str]:
    found = []
    async with admin_connection(platform.db, as_owner=False) as conn:
        if await conn.fetchval("SELECT count(*) FROM tenantry.tenants WHERE slug = $1", slug):
            found.append("catalog row")
        schema = "tenant_" + slug.replace("-", "_")
        if await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema):
            found.append("schema")
        db = "tenantry_t_" + slug.replace("-", "_")
        if await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", db):
            found.append("database")
        if tenant_id is not None:
            for table in ("roles", "outbox", "inbox", "ledger_accounts"):
                n = await conn.fetchval(
                    f"SELECT count(*) FROM tenant_shared.{table} WHERE tenant_id = $1", tenant_id
                )
                if n:
                    found.append(f"tenant_shared.{table}")
    return found


async def latest_saga(platform: Platform, slug: str) -> dict[str, Any]:
    async with admin_connection(platform.db, as_owner=False) as conn:
        row = await conn.fetchrow(
            "SELECT * FROM tenantry.sagas WHERE kind = $1 AND data->>'slug' = $2"
            " ORDER BY created_at DESC LIMIT 1",
            KIND,
            slug,
        )
    assert row is not None
    return dict(row)


CASES = [(step, "schema") for step in STEPS] + [
    ("chart_of_accounts", "shared"),
    ("admin", "shared"),
    ("welcome", "shared"),
    ("admin", "database"),
]


@pytest.mark.parametrize(("step", "mode"), CASES)
async def test_failure_at_each_step_leaves_nothing(
    onboarding: Platform, step: str, mode: str
) -> None:
    platform = onboarding
    slug = f"sg{RUN}-{step[:5].replace('_', '')}-{mode[:2]}"

    async def inject(kind: str, where: str) -> None:
        if kind == KIND and where == f"do:{step}":
            raise Injected(f"injected at {step}")

    platform.sagas.inject = inject
    with pytest.raises(Injected):
        await platform.provisioner.create(
            ProvisionRequest(
                slug, "Saga", IsolationMode(mode), options={"admin_email": f"a@{slug}.test"}
            )
        )
    saga = await latest_saga(platform, slug)
    assert saga["status"] == "failed"
    assert f"injected at {step}" in saga["error"]
    tid = uuid.UUID(saga["data"]["tenant_id"])
    assert await leftovers(platform, slug, tid) == []
    log = saga["log"]
    done = [e["step"] for e in log if e["event"] == "done"]
    undone = [e["step"] for e in log if e["event"] == "compensated"]
    assert undone == list(reversed([*done, step]))  # reverse order, failed step included
    assert done == STEPS[: STEPS.index(step)]


async def test_onboarding_seeds_the_ledgers_chart(onboarding: Platform) -> None:
    platform = onboarding
    res = await platform.provisioner.create(
        ProvisionRequest(f"sg{RUN}-coa", "Chart", IsolationMode.SHARED)
    )
    t = res.tenant
    expected = ["1000", "1200", "2000", "3000", "4000", "5000"]
    assert await chart_codes(platform, t.id, t.schema) == expected
    saga = await latest_saga(platform, t.slug)
    assert saga["status"] == "completed"
    assert saga["data"]["chart_of_accounts"] == "seeded"
    assert saga["data"]["chart_created"] == expected  # what the ledger's step remembered
    assert "_secrets" not in saga["data"]  # secrets are never persisted
    # Idempotent (a resumed saga runs it again): nothing is created twice; RLS scopes it.
    async with tenant_unit_of_work(platform.db, t) as uow:
        again = await seed_chart(uow, "default")
    assert again == []
    assert await chart_codes(platform, t.id, t.schema) == expected
    # A tenant can start with an empty ledger.
    bare = await platform.provisioner.create(
        ProvisionRequest(
            f"sg{RUN}-nocoa",
            "No chart",
            IsolationMode.SHARED,
            options={"chart_of_accounts": "none"},
        )
    )
    assert await chart_codes(platform, bare.tenant.id, bare.tenant.schema) == []


async def test_failure_after_the_chart_removes_it_before_storage(onboarding: Platform) -> None:
    """The chart step's compensation (the ledger's) runs, in reverse order, before
    the storage is dropped: observed from inside the saga between the two."""
    platform = onboarding
    slug = f"sg{RUN}-coaundo"
    seen: dict[str, list[str]] = {}

    async def inject(kind: str, where: str) -> None:
        if kind != KIND:
            return
        saga = await latest_saga(platform, slug)
        tid = uuid.UUID(saga["data"]["tenant_id"])
        schema = "tenant_" + slug.replace("-", "_")
        if where in ("undo:chart_of_accounts", "undo:storage"):
            seen[where] = await chart_codes(platform, tid, schema)
        if where == "do:activate":
            raise Injected("injected at activate")

    platform.sagas.inject = inject
    with pytest.raises(Injected):
        await platform.provisioner.create(ProvisionRequest(slug, "Undo", IsolationMode.SCHEMA))
    assert len(seen["undo:chart_of_accounts"]) == 6  # seeded, then compensated...
    assert seen["undo:storage"] == []  # ...by the ledger, before the schema went
    assert await leftovers(platform, slug, None) == []


async def test_an_unknown_chart_is_refused_before_anything_is_written(
    onboarding: Platform,
) -> None:
    """The ledger's request check runs in ``validate``: no saga, no catalog row."""
    platform = onboarding
    slug = f"sg{RUN}-coaref"
    with pytest.raises(ValidationFailed, match="unknown chart of accounts"):
        await platform.provisioner.create(
            ProvisionRequest(
                slug, "Bad chart", IsolationMode.SHARED, options={"chart_of_accounts": "nope"}
            )
        )
    async with admin_connection(platform.db, as_owner=False) as conn:
        sagas = await conn.fetchval(
            "SELECT count(*) FROM tenantry.sagas WHERE kind = $1 AND data->>'slug' = $2",
            KIND,
            slug,
        )
    assert sagas == 0
    assert await platform.catalog.by_slug(slug) is None


async def test_ledger_failing_in_the_chart_step_compensates(
    onboarding: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an injection: the ledger's handler itself fails (an unknown template), reached
    with the up-front request checks switched off."""
    platform = onboarding
    slug = f"sg{RUN}-coabad"
    monkeypatch.setattr(platform.provisioner, "option_checks", [])
    with pytest.raises(ValidationFailed, match="unknown chart of accounts"):
        await platform.provisioner.create(
            ProvisionRequest(
                slug, "Bad chart", IsolationMode.SHARED, options={"chart_of_accounts": "nope"}
            )
        )
    saga = await latest_saga(platform, slug)
    assert saga["status"] == "failed"
    failed = [e["step"] for e in saga["log"] if e["event"] == "failed"]
    assert failed[0] == "chart_of_accounts"
    assert await leftovers(platform, slug, uuid.UUID(saga["data"]["tenant_id"])) == []


async def test_interrupted_saga_resumes_forward(onboarding: Platform) -> None:
    platform = onboarding
    slug = f"sg{RUN}-resume"

    async def crash(kind: str, where: str) -> None:
        if where == "do:activate":
            raise Crash

    platform.sagas.inject = crash
    with pytest.raises(Crash):
        await platform.provisioner.create(ProvisionRequest(slug, "R", IsolationMode.SCHEMA))
    platform.sagas.inject = None
    saga = await latest_saga(platform, slug)
    assert saga["status"] == "running"
    assert saga["step"] == STEPS.index("activate")
    platform.sagas.stale_s = 0.2
    try:
        await asyncio.sleep(0.3)
        resumed = await platform.sagas.resume_stale()
    finally:
        platform.sagas.stale_s = platform.messaging.settings.saga_stale_s
    assert (saga["id"], "completed") in resumed
    tenant = await platform.catalog.by_slug(slug)
    assert tenant is not None
    assert tenant.status.value == "active"


async def test_interrupted_saga_that_lost_its_secret_compensates(onboarding: Platform) -> None:
    platform = onboarding
    slug = f"sg{RUN}-secret"

    async def crash(kind: str, where: str) -> None:
        if where == "do:admin":
            raise Crash

    platform.sagas.inject = crash
    with pytest.raises(Crash):
        await platform.provisioner.create(
            ProvisionRequest(
                slug,
                "S",
                IsolationMode.SCHEMA,
                options={"admin_email": f"a@{slug}.test", "admin_password": PASSWORD},
            )
        )
    platform.sagas.inject = None
    platform.sagas.stale_s = 0.2
    try:
        await asyncio.sleep(0.3)
        resumed = await platform.sagas.resume_stale()
    finally:
        platform.sagas.stale_s = platform.messaging.settings.saga_stale_s
    saga = await latest_saga(platform, slug)
    assert (saga["id"], "failed") in resumed
    assert PASSWORD not in json.dumps(saga["data"], default=str)  # never persisted
    assert await leftovers(platform, slug, None) == []


async def test_generic_saga_compensates_in_reverse_and_times_out(probed: Platform) -> None:
    order: list[str] = []

    def step(name: str, fail: bool = False, slow: bool = False) -> Step:
        async def do(data: dict[str, Any]) -> dict[str, Any]:
            if slow:
                await asyncio.sleep(5)
            if fail:
                raise Injected(name)
            order.append(f"do:{name}")
            return {name: True}

        async def undo(data: dict[str, Any]) -> None:
            order.append(f"undo:{name}")

        return Step(name, do, undo, timeout_s=0.2)

    probed.sagas.define(
        SagaDefinition(f"probe-{RUN}", [step("a"), step("b"), step("c", slow=True)])
    )
    with pytest.raises(SagaFailed, match="timed out"):
        await probed.sagas.start(f"probe-{RUN}", {})
    assert order == ["do:a", "do:b", "undo:c", "undo:b", "undo:a"]


async def test_platform_route_and_cli_views(
    probed: Platform, client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    op = probed.settings.tenancy.operator_tenant
    if await probed.catalog.by_slug(op) is None:
        await probed.provisioner.create(
            ProvisionRequest(
                op,
                "Operators",
                IsolationMode.SHARED,
                options={"admin_email": "root@operator.test", "admin_password": PASSWORD},
            )
        )
    token = await get_token(client, "root@operator.test", PASSWORD, op)
    slug = f"sg{RUN}-http"
    body = {
        "slug": slug,
        "name": "Via HTTP",
        "isolation": "schema",
        "admin_email": f"boss@{slug}.test",
        "chart_of_accounts": "none",
    }
    r = await client.post("/api/v1/platform/tenants", json=body)
    assert r.status_code == 401, r.text
    r = await client.post(
        "/api/v1/platform/tenants", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "active"
    created = await probed.catalog.by_slug(slug)
    assert created is not None
    assert await chart_codes(probed, created.id, created.schema) == []  # "none" was passed on
    assert r.json()["admin_password"]
    other = await get_token(client, f"boss@{slug}.test", r.json()["admin_password"], slug)
    r = await client.post(
        "/api/v1/platform/tenants",
        json={**body, "slug": slug + "x"},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert r.status_code == 403  # a tenant's own admin is not a platform admin
    saga = await latest_saga(probed, slug)
    d = settings.database
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "{d.url}"\napp_user = "{d.app_user}"\n'
        f'app_password = "{d.app_password}"\nowner_role = "{d.owner_role}"\n'
        "[messaging]\nrelay_in_process = false\n"
    )
    exe = str(Path(sys.executable).with_name("tenantry"))
    out = await asyncio.to_thread(
        subprocess.run,
        [exe, "--config", str(cfg), "sagas", "show", str(saga["id"])],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["status"] == "completed"
    assert [e["step"] for e in shown["log"] if e["event"] == "done"] == STEPS
    out = await asyncio.to_thread(
        subprocess.run,
        [exe, "--config", str(cfg), "sagas", "list", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert str(saga["id"]) in out.stdout
    assert await SagaStore(probed.db).get(saga["id"]) is not None
