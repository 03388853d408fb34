"""The CLI as a user runs it: a real process against the test database."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tenantry.kernel.config import Settings
from tests.cli import EXE, cli


def test_tenants_and_clients_from_the_cli(settings: Settings, platform: object) -> None:
    r = cli(
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
    r = cli(settings, "tenants", "create", "cli-made", "--name", "Again")
    assert r.returncode == 1
    assert "already exists" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli(settings, "tenants", "create", "Bad Slug", "--name", "x")
    assert r.returncode == 2  # an invalid value, not a failure
    assert "slug" in r.stderr
    r = cli(
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
    r = cli(settings, "tenants", "list", "--json")
    assert "cli-made" in {t["slug"] for t in json.loads(r.stdout)["items"]}
    r = cli(settings, "tenants", "suspend", "cli-made")
    assert r.returncode == 0
    assert "suspended" in r.stdout
    r = cli(settings, "migrate")
    assert r.returncode == 0, r.stderr
    r = cli(settings, "keys", "rotate")
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
    assert r.returncode == 2  # a configuration error, like a bad option value
    assert "[http] port" in r.stderr  # the file, the section and the key
    assert "Traceback" not in r.stderr
