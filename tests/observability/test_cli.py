"""``tenantry errors ...`` and ``tenantry slo ...`` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tenantry.kernel.config import Settings
from tenantry.kernel.platform import Platform
from tests.cli import cli as run


async def test_errors_and_slo_commands(
    settings: Settings, platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")

    class CliProbeError(Exception):
        pass

    try:
        raise CliProbeError("from the cli test")
    except CliProbeError as exc:
        res = await platform.observability.errors.capture(exc, {"job": "cli-test"})
    r = run(settings, "errors", "list")
    assert r.returncode == 0
    assert "CliProbeError" in r.stdout
    r = run(settings, "errors", "show", str(res.group_id))
    assert r.returncode == 0, r.stderr
    assert "from the cli test" in r.stdout
    assert "test_errors_and_slo_commands" in r.stdout
    r = run(settings, "errors", "resolve", str(res.group_id))
    assert r.returncode == 0
    assert "resolved" in r.stdout
    shown = await platform.observability.errors.show(res.group_id, 0)
    assert shown is not None
    assert shown["status"] == "resolved"
    r = run(settings, "errors", "resolve", "999999999")
    assert r.returncode == 1
    assert "no error group" in r.stderr
    assert "Traceback" not in r.stderr
    r = run(settings, "slo", "report")
    assert r.returncode == 0, r.stderr
    assert "api:availability" in r.stdout
    assert "state" in r.stdout
    r = run(settings, "--log-format", "console", "slo", "export", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load((tmp_path / "prometheus-rules.yaml").read_text())["groups"]
    assert json.loads((tmp_path / "grafana-dashboard.json").read_text())["panels"]
