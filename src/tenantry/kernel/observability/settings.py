"""Observability settings: ``[observability]`` (logs are ``[logging]``) and ``[slo]``.

SLOs are data: one objective per route group (HTTP method + route templates), each with an
availability target and optionally a latency threshold and the share of requests that must
beat it. The defaults are the tiers of the requirement documents.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Request-latency bucket upper bounds (ms) stored per minute in PostgreSQL. Latency SLO
#: thresholds must be one of them (history stays comparable when the SLOs change).
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    5,
    10,
    25,
    50,
    80,
    100,
    150,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
)


class ErrorTrackingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Group and store unhandled errors.
    enabled: bool = True
    #: Occurrence counts that notify (and a resolved error that recurs always notifies).
    notify_at: list[int] = Field(default_factory=lambda: [1, 10, 100, 1000, 10000])
    #: POST a notification here (thresholds, reopenings).
    webhook_url: str | None = None
    #: Months of occurrence partitions kept; older ones are dropped by the maintenance job.
    retention_months: int = Field(default=6, ge=1, le=120)
    #: Months of occurrence partitions created ahead.
    months_ahead: int = Field(default=3, ge=1, le=24)
    #: Release name recorded with each occurrence.
    release: str | None = None


class TracingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Record spans (trace ids in logs and errors) even when nothing exports them.
    enabled: bool = True
    #: Where spans go: none, console or otlp.
    exporter: Literal["none", "console", "otlp"] = "none"
    #: OTLP/HTTP endpoint, e.g. http://collector:4318/v1/traces (exporter = "otlp").
    otlp_endpoint: str | None = None
    #: Also keep spans in PostgreSQL (``tenantry.otel_spans``, partitioned by day).
    pg_store: bool = False
    #: Share of traces recorded.
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    #: A child span per SQL statement run inside a traced request or job (asyncpg query
    #: logger; recorded after the statement, from its measured duration).
    db_statements: bool = True
    #: Days of spans kept in PostgreSQL (pg_store).
    retention_days: int = Field(default=7, ge=1, le=365)
    #: service.name of exported spans.
    service_name: str = "tenantry"


class ObservabilitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Collect Prometheus metrics.
    metrics_enabled: bool = True
    #: Serve Prometheus metrics at /metrics.
    metrics_path: str = "/metrics"
    #: Seconds between flushes of the per-minute request metrics (SLO store) and span batches.
    flush_interval_s: float = Field(default=10.0, gt=0, le=3600)
    #: Seconds between runs of the maintenance job (partitions, retention, cache warming).
    maintenance_interval_s: float = Field(default=3600.0, gt=0)
    #: Days of per-minute request metrics kept (SLO history).
    request_metrics_retention_days: int = Field(default=35, ge=31, le=400)
    errors: ErrorTrackingSettings = Field(default_factory=ErrorTrackingSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)


class Objective(BaseModel):
    """One SLO: requests matching ``methods`` and ``routes`` (route templates; ``*`` at the
    end matches a prefix; empty = all)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    methods: list[str] = Field(default_factory=list)
    routes: list[str] = Field(default_factory=list)
    availability: float | None = Field(default=None, gt=0, lt=1)
    latency_ms: float | None = None
    latency_target: float = Field(default=0.95, gt=0, lt=1)

    @field_validator("latency_ms")
    @classmethod
    def _bucket(cls, v: float | None) -> float | None:
        if v is not None and v not in LATENCY_BOUNDS_MS:
            raise ValueError(f"must be one of the latency buckets {list(LATENCY_BOUNDS_MS)}")
        return v


def _default_objectives() -> list[Objective]:
    return [
        Objective(name="api", routes=["/api/*"], availability=0.999),
        Objective(
            name="ledger-post-transaction",
            methods=["POST"],
            routes=["/api/v1/ledger/transactions"],
            latency_ms=150,
        ),
        Objective(
            name="ledger-get-balance",
            methods=["GET"],
            routes=["/api/v1/ledger/accounts/{account_id}/balance"],
            latency_ms=80,
        ),
        Objective(
            name="identity-token",
            methods=["POST"],
            routes=["/api/v1/identity/token"],
            latency_ms=250,
        ),
    ]


class CacheObjective(BaseModel):
    """A hit-rate SLO of one cache key prefix (``module:what``, the stats prefix of the
    cache's read paths): SLI = hits / (hits + misses) from the cache's own counters (the
    flushed ``tenantry.cache_stats`` for ``tenantry slo report``, the Prometheus counter
    ``tenantry_cache_requests_total`` for the alert rules)."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(pattern=r"^[a-z][a-z0-9_.-]*:[a-z][a-z0-9_.-]*$")
    #: Share of lookups answered from the cache this SLO aims for.
    target: float = Field(default=0.7, gt=0, lt=1)
    #: Alert when the hit rate (30 min) falls below this share.
    alert_below: float = Field(default=0.6, gt=0, lt=1)
    #: Fewer lookups than this (the report: in all; the alert: a minute): no verdict.
    min_lookups: int = Field(default=100, ge=1)


def _default_cache_objectives() -> list[CacheObjective]:
    """The platform's read paths (docs/operations.md, "Cache"); the permission lookup aims
    higher (> 80 %) and alerts as soon as it is below its goal."""
    return [
        CacheObjective(prefix="identity:profile"),
        CacheObjective(prefix="projects:list"),
        CacheObjective(prefix="entitlements:settings"),
        CacheObjective(prefix="reporting:dashboard"),
        CacheObjective(prefix="authz:permissions", target=0.8, alert_below=0.8),
    ]


class SloSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Rolling window of the SLOs.
    window_days: int = Field(default=30, ge=1, le=90)
    #: The objectives (JSON list in the environment); default: the tiers of the requirements.
    objectives: list[Objective] = Field(default_factory=_default_objectives)
    #: Error-budget policy (requirements 003 §3.3): remaining share above ``healthy_above`` is
    #: healthy, below ``exhausted_below`` exhausted, stressed in between.
    healthy_above: float = 0.5
    #: Remaining error budget share below which it is exhausted.
    exhausted_below: float = 0.1
    #: Hit-rate SLOs of the cache's read paths, per key prefix (JSON list in the environment).
    cache: list[CacheObjective] = Field(default_factory=_default_cache_objectives)
