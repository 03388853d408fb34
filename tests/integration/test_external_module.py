"""A module installed from outside the repository is found and run by its entry point:
``tests/examples/notes`` (its own distribution) is installed into a folder of its own, and
``tenantry`` processes started with that folder on their path see its migrations (its table,
with RLS), its routes (a tenant writes and reads notes, another tenant sees none) and its
event handler (identity's ``UserAddedToTenant`` of the tenant's onboarding becomes a welcome
note). This test process never imports it: the module is not installed here."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from tenantry.kernel.config import Settings
from tenantry.kernel.db.dsn import with_database
from tenantry.testing import PASSWORD, RUN, drop_databases, get_token
from tests.cli import EXE, process_env
from tests.integration.test_onboarding_crash import start_server, stop_server

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "notes"


def _tenantry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )


def _create_tenant(env: dict[str, str], slug: str) -> None:
    done = _tenantry(
        env, "tenants", "create", slug, "--name", slug.title(),
        "--admin-email", f"admin@{slug}.test", "--admin-password", PASSWORD,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.timeout(300)
async def test_a_module_installed_from_outside_runs(settings: Settings, tmp_path: Path) -> None:
    assert settings.database.url
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    done = await asyncio.to_thread(
        subprocess.run,
        [*pip, "--target", str(target), str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    db = f"tenantry_test_{RUN}_ext"
    url = with_database(settings.database.url, db)
    env = {**process_env(settings), "DATABASE_URL": url, "PYTHONPATH": str(target)}
    try:
        listed = await asyncio.to_thread(_tenantry, env, "modules")
        assert listed.returncode == 0, listed.stderr
        assert "notes" in listed.stdout, listed.stdout
        migrated = await asyncio.to_thread(_tenantry, env, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        for slug in ("ext-a", "ext-b"):
            await asyncio.to_thread(_create_tenant, env, slug)
        proc, base = await start_server(env, tmp_path / "serve.log")
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                a = {"Authorization": "Bearer " + await get_token(
                    http, "admin@ext-a.test", PASSWORD, "ext-a")}  # fmt: skip
                b = {"Authorization": "Bearer " + await get_token(
                    http, "admin@ext-b.test", PASSWORD, "ext-b")}  # fmt: skip
                r = await http.post("/api/v1/notes/notes", json={"body": "hello"}, headers=a)
                assert r.status_code == 201, r.text
                r = await http.post("/api/v1/notes/notes", json={"nope": 1}, headers=a)
                assert r.status_code == 422, r.text
                bodies: list[str] = []
                for _ in range(100):  # the handler runs after the onboarding's commit
                    r = await http.get("/api/v1/notes/notes", headers=a)
                    assert r.status_code == 200, r.text
                    bodies = [n["body"] for n in r.json()["items"]]
                    if "welcome admin@ext-a.test" in bodies:
                        break
                    await asyncio.sleep(0.1)
                assert "hello" in bodies
                assert "welcome admin@ext-a.test" in bodies, bodies
                r = await http.get("/api/v1/notes/notes", headers=b)
                assert [n["body"] for n in r.json()["items"]] == ["welcome admin@ext-b.test"]
                r = await http.get("/api/v1/audit/events?limit=50", headers=a)
                assert "notes.note.create" in [e["action"] for e in r.json()["items"]]
        finally:
            stop_server(proc)
        conn = await asyncpg.connect(url)
        try:
            forced = await conn.fetchval(
                "SELECT relforcerowsecurity FROM pg_class"
                " WHERE oid = 'tenant_shared.example_notes'::regclass"
            )
        finally:
            await conn.close()
        assert forced, "the external module's table has no forced RLS"
    finally:
        await drop_databases(with_database(settings.database.url, "postgres"), [db])
