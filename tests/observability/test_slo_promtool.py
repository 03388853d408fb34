"""The generated Prometheus rules checked by Prometheus's own tool: ``promtool check rules``
(syntax of the file and of every PromQL expression) and ``promtool test rules`` (the burn-rate
alerts fire on synthetic series that burn the budget, and stay quiet on ones that do not).

promtool comes with the Debian package ``prometheus``. When it is not on PATH, the ``promtool``
fixture fetches that package with ``apt-get download`` (no install, no daemon started) and
keeps only ``usr/bin/promtool``, in ``~/.cache/tenantry/promtool`` for later runs. Without
it these tests skip, saying why; with ``CI=true`` they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tenantry.kernel.observability import slo_export
from tenantry.kernel.observability.settings import SloSettings

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tenantry" / "promtool"


def fetch_promtool() -> Path:
    """promtool from Debian's ``prometheus`` package, unpacked into CACHE (once per machine).

    Raises RuntimeError saying what failed (no apt-get, no package, unpacking failed)."""
    target = CACHE / "usr" / "bin" / "promtool"
    if target.exists():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError("promtool is not on PATH and apt-get/dpkg-deb are not available")
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(
            ["apt-get", "download", "prometheus"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        debs = list(Path(tmp).glob("prometheus_*.deb"))
        if got.returncode != 0 or not debs:
            raise RuntimeError(f"apt-get download prometheus failed: {got.stderr.strip()}")
        staging = Path(tmp) / "x"
        staging.mkdir()
        tar = subprocess.run(
            ["dpkg-deb", "-x", str(debs[0]), str(staging)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if tar.returncode != 0:
            raise RuntimeError(f"unpacking promtool failed: {tar.stderr.strip()}")
        target.parent.mkdir(parents=True, exist_ok=True)
        # rename within one file system is atomic: a concurrent run sees all or nothing
        partial = target.with_suffix(f".{os.getpid()}")
        shutil.copy2(staging / "usr" / "bin" / "promtool", partial)
        partial.replace(target)
    return target


@pytest.fixture(scope="module")
def promtool_path() -> Path:
    found = shutil.which("promtool")
    if found:
        return Path(found)
    try:
        return fetch_promtool()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"promtool needed in CI: {exc}")
        pytest.skip(f"promtool not available ({exc}): the rules are only structure-checked")


METRIC = "tenantry_http_request_duration_seconds"


def run_promtool(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)


def series(
    suffix: str, route: str, method: str, status: str, values: str, **extra: str
) -> dict[str, str]:
    labels = {"route": route, "method": method, "status": status, "plan": "free", **extra}
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{METRIC}_{suffix}{{{body}}}", "values": values}


def test_promtool_accepts_the_generated_rules(tmp_path: Path, promtool_path: Path) -> None:
    rules = tmp_path / "prometheus-rules.yaml"
    rules.write_text(slo_export.rules_yaml(SloSettings()))
    r = run_promtool(promtool_path, "check", "rules", str(rules))
    assert r.returncode == 0, r.stdout + r.stderr
    n = 8 + len(SloSettings().cache)  # burn-rate rules + one hit-rate rule per cache prefix
    assert f"SUCCESS: {n} rules found" in r.stdout, r.stdout


def test_burn_rate_alerts_fire_on_synthetic_series(tmp_path: Path, promtool_path: Path) -> None:
    s = SloSettings()
    (tmp_path / "rules.yaml").write_text(slo_export.rules_yaml(s))
    rules = {r["alert"]: r for r in slo_export.alert_rules(s)["groups"][0]["rules"]}

    def expect(name: str) -> dict[str, object]:
        rule = rules[name]
        return {"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}

    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                # 10 % of /api requests fail (budget 0.1 %): fast burn after its 2 minutes;
                # every token request is slower than 250 ms: the token latency SLO burns.
                "interval": "1m",
                "input_series": [
                    series("count", "/api/v1/x", "GET", "500", "0+10x120"),
                    series("count", "/api/v1/x", "GET", "200", "0+90x120"),
                    series("count", "/api/v1/identity/token", "POST", "200", "0+100x120"),
                    series("bucket", "/api/v1/identity/token", "POST", "200", "0x120", le="0.25"),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "30m",
                        "alertname": "SLOApiAvailabilityFastBurn",
                        "exp_alerts": [expect("SLOApiAvailabilityFastBurn")],
                    },
                    {
                        "eval_time": "30m",
                        "alertname": "SLOIdentityTokenLatencyFastBurn",
                        "exp_alerts": [expect("SLOIdentityTokenLatencyFastBurn")],
                    },
                    {
                        "eval_time": "1m",  # not yet: the condition must hold for 2 minutes
                        "alertname": "SLOApiAvailabilityFastBurn",
                        "exp_alerts": [],
                    },
                ],
            },
            {
                # Within budget: 0.05 % of /api requests fail, every token request is fast.
                "interval": "1m",
                "input_series": [
                    series("count", "/api/v1/x", "GET", "500", "0+1x120"),
                    series("count", "/api/v1/x", "GET", "200", "0+1999x120"),
                    series("count", "/api/v1/identity/token", "POST", "200", "0+100x120"),
                    series(
                        "bucket", "/api/v1/identity/token", "POST", "200", "0+100x120", le="0.25"
                    ),
                ],
                "alert_rule_test": [
                    {"eval_time": "90m", "alertname": name, "exp_alerts": []} for name in rules
                ],
            },
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    r = run_promtool(promtool_path, "test", "rules", str(tmp_path / "tests.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_has_what_grafana_needs_to_import_it() -> None:
    """The dashboard JSON model fields Grafana requires or uses on import (no Grafana here to
    load it): title, uid, schemaVersion, the datasource variable the panels refer to, panels
    with id/type/title/gridPos/datasource and targets with refId + expr."""
    s = SloSettings()
    dash = json.loads(slo_export.dashboard_json(s))
    assert dash["title"]
    assert dash["uid"]
    assert isinstance(dash["schemaVersion"], int)
    assert dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["type"] == "timeseries"
        assert p["title"]
        assert set(p["gridPos"]) == {"x", "y", "w", "h"}
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["expr"].count("(") == t["expr"].count(")")
            assert t["datasource"] == p["datasource"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path, promtool_path: Path) -> None:
    """Each panel query checked by promtool, as the expression of a recording rule."""
    dash = slo_export.grafana_dashboard(SloSettings())
    rules = [
        {"record": f"tenantry:check_{p['id']}_{t['refId']}", "expr": t["expr"]}
        for p in dash["panels"]
        for t in p["targets"]
    ]
    f = tmp_path / "dashboard-queries.yaml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = run_promtool(promtool_path, "check", "rules", str(f))
    assert r.returncode == 0, r.stdout + r.stderr


def test_cache_hit_rate_alerts_fire_on_synthetic_counters(
    tmp_path: Path, promtool_path: Path
) -> None:
    """The cache rules on ``tenantry_cache_requests_total`` as /metrics exposes it: 50 %
    hits on ``projects:list`` (alert below 60 %) fires after its 15 minutes; 75 % on
    ``authz:permissions`` (alert below 80 %) fires; 90 % hits fire nothing; a quiet prefix
    (under ``min_lookups`` a minute) fires nothing whatever its rate."""
    s = SloSettings()
    (tmp_path / "rules.yaml").write_text(slo_export.rules_yaml(s))
    groups = {g["name"]: g["rules"] for g in slo_export.alert_rules(s)["groups"]}
    rules = {r["alert"]: r for r in groups["tenantry-cache"]}

    def counter(prefix: str, result: str, values: str) -> dict[str, str]:
        labels = f'backend="postgres", prefix="{prefix}", result="{result}"'
        return {"series": f"tenantry_cache_requests_total{{{labels}}}", "values": values}

    def fires(name: str) -> list[dict[str, object]]:
        rule = rules[name]
        return [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]

    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    counter("projects:list", "l1_hit", "0+300x90"),
                    counter("projects:list", "miss", "0+300x90"),
                    counter("authz:permissions", "l1_hit", "0+600x90"),
                    counter("authz:permissions", "hit", "0+150x90"),
                    counter("authz:permissions", "miss", "0+250x90"),
                    counter("identity:profile", "hit", "0+900x90"),
                    counter("identity:profile", "miss", "0+100x90"),
                    counter("reporting:dashboard", "miss", "0+1x90"),  # quiet: 1 a minute
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "60m",
                        "alertname": "CacheProjectsListHitRateLow",
                        "exp_alerts": fires("CacheProjectsListHitRateLow"),
                    },
                    {
                        "eval_time": "60m",
                        "alertname": "CacheAuthzPermissionsHitRateLow",
                        "exp_alerts": fires("CacheAuthzPermissionsHitRateLow"),
                    },
                    {
                        "eval_time": "60m",
                        "alertname": "CacheIdentityProfileHitRateLow",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "60m",
                        "alertname": "CacheReportingDashboardHitRateLow",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "CacheProjectsListHitRateLow",
                        "exp_alerts": [],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    r = run_promtool(promtool_path, "test", "rules", str(tmp_path / "tests.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr
