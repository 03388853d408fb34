"""Environment overrides reach the running processes, end to end (issue 12 item 9).

A container that sets ``TENANTRY_JOBS__IN_PROCESS=false`` and
``TENANTRY_MESSAGING__RELAY_IN_PROCESS=false`` must get a ``tenantry serve`` that neither runs
jobs nor relays the outbox (dedicated workers do), and ``TENANTRY_EXPORTS__STORAGE_PATH`` must
move where export files are written. Before, these variables were silently ignored: the
server ran the export job and relayed the outbox anyway, into ``.tenantry/exports``.

The server runs as a real process against a database of its own (nothing else, such as the
test module's platform, relays or runs jobs there), so what happens is only its doing.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import asyncpg
import httpx

from tenantry.kernel.config import Settings
from tenantry.kernel.db.dsn import with_database
from tests.cli import EXE, process_env
from tests.conftest import PASSWORD, RUN, get_token
from tests.integration.test_onboarding_crash import start_server, stop_server


def tenantry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


async def undelivered(url: str, schema: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        sql = f'SELECT count(*) FROM "{schema}".outbox WHERE delivered_at IS NULL'
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def export_status(http: httpx.AsyncClient, auth: dict[str, str], export_id: str) -> str:
    r = await http.get(f"/api/v1/exports/{export_id}", headers=auth)
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


async def test_environment_turns_off_the_job_worker_and_relay_of_serve_and_moves_exports(
    settings: Settings, tmp_path: Path
) -> None:
    assert settings.database.url
    url = with_database(settings.database.url, f"tenantry_test_{RUN}_envx")
    storage = tmp_path / "exports-from-env"
    env = {**process_env(settings), "DATABASE_URL": url}
    env["TENANTRY_EXPORTS__STORAGE_PATH"] = str(storage)
    off = {
        **env,
        "TENANTRY_JOBS__IN_PROCESS": "false",
        "TENANTRY_MESSAGING__RELAY_IN_PROCESS": "false",
    }
    try:
        done = await asyncio.to_thread(tenantry, off, "migrate")
        assert done.returncode == 0, done.stderr
        done = await asyncio.to_thread(
            tenantry,
            off,
            "tenants",
            "create",
            "envco",
            "--name",
            "Env Co",
            "--admin-email",
            "admin@envco.test",
            "--admin-password",
            PASSWORD,
            "--json",
        )
        assert done.returncode == 0, done.stderr
        schema = json.loads(done.stdout)["schema"]
        # The onboarding published its welcome event through the outbox: nobody relayed it.
        assert await undelivered(url, schema) > 0

        proc, base = await start_server(off, tmp_path / "serve-off.log")
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                token = await get_token(http, "admin@envco.test", PASSWORD, "envco")
                auth = {"Authorization": f"Bearer {token}"}
                r = await http.post(
                    "/api/v1/exports",
                    headers=auth,
                    json={"source": "exports.history", "format": "csv"},
                )
                assert r.status_code == 202, r.text
                export_id = r.json()["id"]
                # Several poll intervals of the job worker (1 s) and of the relay (2 s).
                await asyncio.sleep(5)
                assert await export_status(http, auth, export_id) == "queued"
                assert await undelivered(url, schema) > 0
        finally:
            stop_server(proc)
        assert not storage.exists()

        # The same environment without the two switches: serve runs both again, and the
        # export lands under TENANTRY_EXPORTS__STORAGE_PATH.
        proc, base = await start_server(env, tmp_path / "serve-on.log")
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                token = await get_token(http, "admin@envco.test", PASSWORD, "envco")
                auth = {"Authorization": f"Bearer {token}"}
                deadline = time.monotonic() + 30
                while (status := await export_status(http, auth, export_id)) != "succeeded":
                    assert status in ("queued", "running"), status
                    assert time.monotonic() < deadline, status
                    await asyncio.sleep(0.2)
                while await undelivered(url, schema) > 0:
                    assert time.monotonic() < deadline, "the relay never delivered"
                    await asyncio.sleep(0.2)
        finally:
            stop_server(proc)
        files = [p for p in storage.rglob("*") if p.is_file()]
        assert [p.name for p in files] == [f"{export_id}.csv"]
    finally:
        admin = await asyncpg.connect(with_database(settings.database.url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "tenantry_test_{RUN}_envx" WITH (FORCE)')
        finally:
            await admin.close()


def test_a_bad_setting_is_one_line_and_exit_2(settings: Settings, tmp_path: Path) -> None:
    cfg = tmp_path / "tenantry.toml"
    cfg.write_text("[jobs]\nin_proces = false\n")
    env = {**process_env(settings), "TENANTRY_MESSAGING__RELAY_IN_PROCES": "false"}
    for args in (["--config", str(cfg), "migrate"], ["--config", str(cfg), "serve"]):
        done = tenantry(env, *args)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert f"{cfg} [jobs] in_proces: unknown key (did you mean in_process?)" in lines[0]
        assert "TENANTRY_MESSAGING__RELAY_IN_PROCES: unknown key" in lines[0]


def test_config_check_lists_every_problem_and_reference_every_key(
    settings: Settings, tmp_path: Path
) -> None:
    env = process_env(settings)
    done = tenantry(env, "config", "check")
    assert (done.returncode, done.stdout.startswith("OK")) == (0, True), done.stderr
    cfg = tmp_path / "tenantry.toml"
    cfg.write_text('[exports]\nstorage_pth = "/x"\n[ratelimit]\nbackend = "memcached"\n')
    bad = {**env, "TENANTRY_JOBS__IN_PROCESS": "perhaps"}
    done = tenantry(bad, "--config", str(cfg), "config", "check")
    assert done.returncode == 2
    assert sorted(done.stderr.splitlines()) == [
        f"error: {cfg} [exports] storage_pth: unknown key (did you mean storage_path?)",
        f"error: {cfg} [ratelimit] backend: Input should be 'memory' or 'redis' (got 'memcached')",
        "error: TENANTRY_JOBS__IN_PROCESS: Input should be a valid boolean, unable to interpret "
        "input (got 'perhaps')",
    ]
    done = tenantry(env, "config", "reference")
    assert done.returncode == 0, done.stderr
    for key in ("`in_process`", "`TENANTRY_JOBS__IN_PROCESS`", "`TENANTRY_EXPORTS__STORAGE_PATH`"):
        assert key in done.stdout
