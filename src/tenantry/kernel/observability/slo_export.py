"""Prometheus alert rules and a Grafana dashboard generated from the SLO config.

Both read the request histogram ``tenantry_http_request_duration_seconds`` (labels route,
method, status, plan) that /metrics exposes, so the SLOs a Prometheus server alerts on are
the ones ``tenantry slo report`` computes from PostgreSQL.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tenantry.kernel.observability.settings import CacheObjective, Objective, SloSettings
from tenantry.kernel.observability.slo import FAST_BURN, SLOW_BURN

METRIC = "tenantry_http_request_duration_seconds"
CACHE_METRIC = "tenantry_cache_requests_total"
#: The window of the cache hit-rate alerts.
CACHE_WINDOW = "30m"
_ALERT_WINDOWS = (
    ("fast", "1h", "5m", FAST_BURN, "page"),
    ("slow", "6h", "30m", SLOW_BURN, "ticket"),
)


def _route_re(obj: Objective) -> str:
    if not obj.routes:
        return ".*"
    parts = [re.escape(p[:-1]) + ".*" if p.endswith("*") else re.escape(p) for p in obj.routes]
    return "|".join(parts)


def selector(obj: Objective, extra: str = "") -> str:
    """A PromQL label selector (raw backtick strings: no escaping of the regex)."""
    parts = [f"route=~`{_route_re(obj)}`"]
    if obj.methods:
        parts.append(f"method=~`{'|'.join(re.escape(m) for m in obj.methods)}`")
    if extra:
        parts.append(extra)
    return "{" + ", ".join(parts) + "}"


def error_ratio(obj: Objective, kind: str, window: str) -> str:
    if kind == "availability":
        bad = f"sum(rate({METRIC}_count{selector(obj, 'status=~`5..`')}[{window}]))"
        valid = f"sum(rate({METRIC}_count{selector(obj, 'status!~`4..`')}[{window}]))"
        return f"({bad} / {valid})"
    assert obj.latency_ms is not None
    le = f'le="{obj.latency_ms / 1000:g}"'
    good = f"sum(rate({METRIC}_bucket{selector(obj, le)}[{window}]))"
    total = f"sum(rate({METRIC}_count{selector(obj)}[{window}]))"
    return f"(1 - {good} / {total})"


def _kinds(obj: Objective) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if obj.availability is not None:
        out.append(("availability", obj.availability))
    if obj.latency_ms is not None:
        out.append(("latency", obj.latency_target))
    return out


def alert_rules(s: SloSettings) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for obj in s.objectives:
        for kind, target in _kinds(obj):
            budget = 1 - target
            for speed, long_w, short_w, factor, severity in _ALERT_WINDOWS:
                expr = (
                    f"{error_ratio(obj, kind, long_w)} > ({factor} * {budget:g})\n"
                    f"and\n{error_ratio(obj, kind, short_w)} > ({factor} * {budget:g})"
                )
                name = "".join(w.capitalize() for w in re.split(r"[-_:]", obj.name))
                rules.append(
                    {
                        "alert": f"SLO{name}{kind.capitalize()}{speed.capitalize()}Burn",
                        "expr": expr,
                        "for": "2m" if speed == "fast" else "15m",
                        "labels": {"severity": severity, "slo": f"{obj.name}:{kind}"},
                        "annotations": {
                            "summary": f"{obj.name} {kind} SLO ({target:.3%}) burning its "
                            f"{s.window_days}-day budget {factor}x too fast ({long_w}/{short_w})",
                        },
                    }
                )
    groups = [{"name": "tenantry-slo", "rules": rules}]
    if s.cache:
        groups.append({"name": "tenantry-cache", "rules": [cache_rule(o) for o in s.cache]})
    return {"groups": groups}


def cache_hit_ratio(obj: CacheObjective, window: str) -> str:
    sel = f'prefix="{obj.prefix}"'
    hits = f'sum(rate({CACHE_METRIC}{{{sel}, result=~"hit|l1_hit"}}[{window}]))'
    return f"({hits} / sum(rate({CACHE_METRIC}{{{sel}}}[{window}])))"


def cache_rule(obj: CacheObjective) -> dict[str, Any]:
    """Below ``alert_below`` over ``CACHE_WINDOW`` for 15 minutes, with at least
    ``min_lookups`` lookups a minute (a quiet prefix does not page)."""
    name = "".join(w.capitalize() for w in re.split(r"[-_:.]", obj.prefix))
    volume = f'sum(rate({CACHE_METRIC}{{prefix="{obj.prefix}"}}[{CACHE_WINDOW}])) * 60'
    return {
        "alert": f"Cache{name}HitRateLow",
        "expr": f"{cache_hit_ratio(obj, CACHE_WINDOW)} < {obj.alert_below:g}\n"
        f"and\n{volume} >= {obj.min_lookups}",
        "for": "15m",
        "labels": {"severity": "ticket", "slo": f"cache-{obj.prefix}:hit_rate"},
        "annotations": {
            "summary": f"cache hit rate of {obj.prefix} below {obj.alert_below:.0%} "
            f"({CACHE_WINDOW}; target {obj.target:.0%})",
        },
    }


def grafana_dashboard(s: SloSettings) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    pid = 1
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    for obj in s.objectives:
        for kind, target in _kinds(obj):
            targets = [
                {
                    "refId": "A",
                    "datasource": datasource,
                    "expr": f"1 - {error_ratio(obj, kind, '5m')}",
                    "legendFormat": "SLI (5m)",
                },
                {
                    "refId": "B",
                    "datasource": datasource,
                    "expr": f"{error_ratio(obj, kind, '1h')} / {1 - target:g}",
                    "legendFormat": "burn rate (1h)",
                },
            ]
            panels.append(
                {
                    "id": pid,
                    "type": "timeseries",
                    "title": f"{obj.name} — {kind} (target {target:.3%})",
                    "gridPos": {"x": 0, "y": y, "w": 24, "h": 8},
                    "datasource": datasource,
                    "targets": targets,
                }
            )
            pid += 1
            y += 8
    return {
        "title": "Tenantry SLOs",
        "uid": "tenantry-slo",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]
        },
        "panels": panels,
    }


def rules_yaml(s: SloSettings) -> str:
    """The alert rules as a Prometheus rule file (``promtool check rules`` accepts it)."""
    return yaml.safe_dump(alert_rules(s), sort_keys=False, width=200)


def dashboard_json(s: SloSettings) -> str:
    return json.dumps(grafana_dashboard(s), indent=2)
