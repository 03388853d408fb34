"""The CLI as a user runs it: a real process against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tenantry.kernel.config import Settings

EXE = str(Path(sys.executable).with_name("tenantry"))


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    s = settings.database
    env = {
        **os.environ,
        "DATABASE_URL": s.url or "",
        "TENANTRY_DATABASE__APP_USER": s.app_user,
        "TENANTRY_DATABASE__APP_PASSWORD": s.app_password,
        "TENANTRY_DATABASE__OWNER_ROLE": s.owner_role,
    }
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_tenants_and_clients_from_the_cli(settings: Settings, platform: object) -> None:
    r = run(
        settings,
        "tenants",
        "create",
        "cli-made",
        "--name",
        "CLI Made",
        "--isolation",
        "schema",
        "--admin-email",
        "boss@cli.test",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["slug"] == "cli-made"
    assert out["isolation"] == "schema"
    assert out["status"] == "active"
    assert out["admin_password"]
    r = run(settings, "tenants", "create", "cli-made", "--name", "Again")
    assert r.returncode == 1
    assert "already exists" in r.stderr
    assert "Traceback" not in r.stderr
    r = run(settings, "tenants", "create", "Bad Slug", "--name", "x")
    assert r.returncode == 1
    assert "slug" in r.stderr
    r = run(
        settings,
        "clients",
        "create",
        "--tenant",
        "cli-made",
        "--name",
        "etl",
        "--roles",
        "admin",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["client_secret"]
    r = run(settings, "tenants", "list", "--json")
    assert "cli-made" in {t["slug"] for t in json.loads(r.stdout)["items"]}
    r = run(settings, "tenants", "suspend", "cli-made")
    assert r.returncode == 0
    assert "suspended" in r.stdout
    r = run(settings, "migrate")
    assert r.returncode == 0, r.stderr
    r = run(settings, "keys", "rotate")
    assert r.returncode == 0
    assert "new signing key" in r.stdout


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[http]\nport = -1\n")
    r = subprocess.run(
        [EXE, "--config", str(cfg), "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert "http.port" in r.stderr
    assert "Traceback" not in r.stderr
