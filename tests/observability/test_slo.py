"""SLO math against hand-computed fixtures, the PostgreSQL path, API, CLI exports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from tenantry.capabilities.cache import Cache
from tenantry.kernel.observability import slo, slo_export
from tenantry.kernel.observability.settings import (
    LATENCY_BOUNDS_MS,
    CacheObjective,
    Objective,
    SloSettings,
)
from tenantry.kernel.observability.slo import NBUCKETS, Counts, evaluate
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.conftest import MakeTenant

SETTINGS = SloSettings(
    objectives=[
        Objective(name="api", routes=["/api/*"], availability=0.999),
        Objective(
            name="token", methods=["POST"], routes=["/api/v1/identity/token"], latency_ms=250
        ),
    ]
)
B5 = LATENCY_BOUNDS_MS.index(5)
B250 = LATENCY_BOUNDS_MS.index(250)
B500 = LATENCY_BOUNDS_MS.index(500)


def buckets(**at: int) -> list[int]:
    out = [0] * NBUCKETS
    for idx, n in at.items():
        out[int(idx[1:])] = n
    return out


# (method, route, age, total, 5xx, 4xx, buckets)
FIXTURE = [
    ("GET", "/api/v1/x", timedelta(minutes=2), 100, 2, 0, buckets(**{f"b{B5}": 100})),
    ("GET", "/api/v1/x", timedelta(days=10), 9900, 8, 100, buckets(**{f"b{B5}": 9900})),
    (
        "POST",
        "/api/v1/identity/token",
        timedelta(hours=2),
        200,
        0,
        0,
        buckets(**{f"b{B250}": 180, f"b{B500}": 20}),
    ),
    ("GET", "/healthz", timedelta(minutes=1), 50, 50, 0, buckets(**{f"b{B5}": 50})),
]


def seg_of(age: timedelta) -> int:
    for i, limit in enumerate(
        (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=1), timedelta(hours=6))
    ):
        if age <= limit:
            return i
    return 4


def check(rows: list[dict[str, Any]]) -> None:
    by = {r["slo"]: r for r in rows}
    api = by["api:availability"]
    # valid = 100 + (9900 - 100) + 200 = 10100; bad = 2 + 8 = 10 (healthz is not /api/*)
    assert api["requests"] == 10100
    assert api["bad"] == 10
    assert api["sli"] == pytest.approx(10090 / 10100, abs=1e-6)
    assert api["budget_remaining"] == pytest.approx(1 - (10 / 10100) / 0.001, abs=1e-6)
    assert api["state"] == "exhausted"
    burn = api["burn_rate"]
    assert burn["5m"] == pytest.approx(20.0)  # 2/100 / 0.001
    assert burn["30m"] == pytest.approx(20.0)
    assert burn["1h"] == pytest.approx(20.0)
    assert burn["6h"] == pytest.approx((2 / 300) / 0.001, abs=1e-3)  # 6.667
    assert api["fast_burn"] is True
    assert api["slow_burn"] is True
    tok = by["token:latency"]
    assert tok["requests"] == 200
    assert tok["good"] == 180
    assert tok["sli"] == pytest.approx(0.9)
    assert tok["budget_remaining"] == pytest.approx(-1.0)  # 1 - 0.10 / 0.05
    assert tok["burn_rate"] == {"5m": 0.0, "30m": 0.0, "1h": 0.0, "6h": 2.0}
    assert tok["fast_burn"] is False
    assert tok["slow_burn"] is False
    assert tok["state"] == "exhausted"


def test_slo_math_on_a_hand_computed_fixture() -> None:
    segs = {}
    for method, route, age, total, s5, s4, b in FIXTURE:
        segs[(method, route, seg_of(age))] = Counts(total, s5, s4, b)
    check(evaluate(segs, SETTINGS))


def test_policy_states_and_empty_windows() -> None:
    s = SloSettings()
    assert slo.state_of(0.51, s) == "healthy"
    assert slo.state_of(0.5, s) == "stressed"
    assert slo.state_of(0.1, s) == "stressed"
    assert slo.state_of(0.09, s) == "exhausted"
    rows = evaluate({}, SETTINGS)
    assert all(r["sli"] == 1.0 and r["state"] == "healthy" for r in rows)
    # 25 % of the budget used -> 75 % left: healthy; 60 % used -> stressed
    segs = {("GET", "/api/a", 4): Counts(4000, 1, 0, buckets(**{f"b{B5}": 4000}))}
    assert evaluate(segs, SETTINGS)[0]["budget_remaining"] == pytest.approx(0.75)
    segs = {("GET", "/api/a", 4): Counts(5000, 3, 0, buckets(**{f"b{B5}": 5000}))}
    assert evaluate(segs, SETTINGS)[0]["state"] == "stressed"


def test_latency_threshold_must_be_a_bucket() -> None:
    with pytest.raises(ValueError, match="latency buckets"):
        Objective(name="x", latency_ms=123)


async def test_recorded_minutes_in_postgresql_give_the_same_report(platform: Platform) -> None:
    now = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)
    rows = [
        (now - age, method, route, total, s5, s4, 1.0, b)
        for method, route, age, total, s5, s4, b in FIXTURE
    ]
    from tenantry.kernel.observability import sql as q

    async with platform.db.platform_unit_of_work() as uow:
        await uow.executemany(q.UPSERT_REQUEST_MINUTE, rows)
    check(await slo.report(platform.db, SETTINGS, now))
    # Upserts add up (two processes flushing the same minute).
    async with platform.db.platform_unit_of_work() as uow:
        await uow.executemany(q.UPSERT_REQUEST_MINUTE, rows[:1])
    doubled = {r["slo"]: r for r in await slo.report(platform.db, SETTINGS, now)}
    assert doubled["api:availability"]["requests"] == 10200
    assert doubled["api:availability"]["burn_rate"]["5m"] == pytest.approx(20.0)


async def test_recorder_flushes_minutes_and_slo_api(
    platform: Platform, obs_client: httpx.AsyncClient, operator_auth: dict[str, str]
) -> None:
    rec = slo.RequestRecorder()
    rec.record("GET", "/api/v1/probe", 200, 0.004)
    rec.record("GET", "/api/v1/probe", 503, 0.3)
    rec.record("GET", "/api/v1/probe", 404, 0.001)
    drained = rec.drain()
    assert len(drained) == 1
    _, method, route, total, s5, s4, _ms, b = drained[0]
    assert (method, route, total, s5, s4) == ("GET", "/api/v1/probe", 3, 1, 1)
    assert b[0] == 2
    assert b[LATENCY_BOUNDS_MS.index(500)] == 1
    await obs_client.get("/api/v1/identity/me", headers=operator_auth)
    await platform.observability.flush()
    r = await obs_client.get("/api/v1/platform/slo", headers=operator_auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["window_days"] == 30
    names = {s["slo"] for s in body["slos"]}
    assert {"api:availability", "ledger-get-balance:latency", "identity-token:latency"} <= names
    api = next(s for s in body["slos"] if s["slo"] == "api:availability")
    assert api["requests"] >= 1


def test_generated_alert_rules_and_dashboard_are_valid() -> None:
    s = SloSettings()
    rules = yaml.safe_load(yaml.safe_dump(slo_export.alert_rules(s)))
    group = rules["groups"][0]
    assert group["name"] == "tenantry-slo"
    kinds = sum((o.availability is not None) + (o.latency_ms is not None) for o in s.objectives)
    assert len(group["rules"]) == kinds * 2  # fast + slow per SLO
    for rule in group["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert rule["alert"].isidentifier()
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")")
        assert expr.count("`") % 2 == 0
        assert "tenantry_http_request_duration_seconds" in expr
        assert "\nand\n" in expr
    latency = next(r for r in group["rules"] if r["labels"]["slo"] == "identity-token:latency")
    assert 'le="0.25"' in latency["expr"]
    assert "> (14.4 * 0.05)" in latency["expr"]
    dash = json.loads(json.dumps(slo_export.grafana_dashboard(s)))
    assert dash["uid"] == "tenantry-slo"
    assert len(dash["panels"]) == kinds
    assert all(p["targets"] and p["targets"][0]["expr"] for p in dash["panels"])


def test_cache_hit_rate_verdicts_on_hand_figures() -> None:
    plain = CacheObjective(prefix="projects:list")
    assert (plain.target, plain.alert_below) == (0.7, 0.6)
    assert slo.cache_verdict(plain, 80, 20)["state"] == "ok"
    assert slo.cache_verdict(plain, 70, 30)["state"] == "ok"  # at the target
    below = slo.cache_verdict(plain, 65, 35)
    assert (below["state"], below["sli"], below["alert"]) == ("below-target", 0.65, False)
    alert = slo.cache_verdict(plain, 59, 41)
    assert (alert["state"], alert["alert"], alert["lookups"]) == ("alert", True, 100)
    assert slo.cache_verdict(plain, 10, 80)["state"] == "no-data"  # 90 < min_lookups
    assert slo.cache_verdict(plain, 0, 0)["sli"] is None
    perms = next(o for o in SloSettings().cache if o.prefix == "authz:permissions")
    assert (perms.target, perms.alert_below) == (0.8, 0.8)
    assert slo.cache_verdict(perms, 79, 21)["state"] == "alert"
    assert slo.cache_verdict(perms, 81, 19)["state"] == "ok"
    with pytest.raises(ValueError, match="prefix"):
        CacheObjective(prefix="no-colon")


async def test_cache_report_computes_from_the_flushed_counters(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    """Real lookups through the cache, flushed as every process flushes them: the report's
    hit rate is theirs (3 hits of 4 lookups: 75 %, below the 80 % asked here, above 60 %)."""
    cache = platform.use(Cache)
    t = await make_tenant()
    await cache.flush_stats()
    with tenant_scope(t.tenant):
        assert await cache.get("slotest:probe:1") is None
        await cache.set("slotest:probe:1", 1)
        for _ in range(3):
            assert await cache.get("slotest:probe:1") == 1
    await cache.flush_stats()
    s = SloSettings(
        cache=[
            CacheObjective(prefix="slotest:probe", target=0.8, alert_below=0.6, min_lookups=4),
            CacheObjective(prefix="slotest:none"),
        ]
    )
    probe, none = await slo.cache_report(platform.db, s)
    assert (probe["hits"], probe["misses"], probe["sli"]) == (3, 1, 0.75)
    assert probe["state"] == "below-target"
    assert none["state"] == "no-data"


def test_cache_alert_rules_follow_the_cache_objectives() -> None:
    s = SloSettings()
    groups = {g["name"]: g["rules"] for g in slo_export.alert_rules(s)["groups"]}
    rules = {r["labels"]["slo"]: r for r in groups["tenantry-cache"]}
    assert set(rules) == {f"cache-{o.prefix}:hit_rate" for o in s.cache}
    perms = rules["cache-authz:permissions:hit_rate"]
    assert perms["alert"] == "CacheAuthzPermissionsHitRateLow"
    assert (
        'tenantry_cache_requests_total{prefix="authz:permissions", result=~"hit|l1_hit"}'
        in (perms["expr"])
    )
    assert ") < 0.8\nand\n" in perms["expr"]
    assert ") < 0.6\nand\n" in rules["cache-projects:list:hit_rate"]["expr"]
