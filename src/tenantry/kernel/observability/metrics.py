"""Prometheus metrics: one registry, the platform's collectors, and the ones others feed.

Cardinality stays bounded: requests are labelled by route *template*, method, status and
tenant *plan*, never by tenant id or raw path. Other capabilities feed the collectors below
(``OUTBOX_DEPTH.labels(store="main").set(n)``); they are defined here so /metrics lists them
whether or not their producers are installed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from tenantry.kernel.observability.settings import LATENCY_BOUNDS_MS

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database

REGISTRY = CollectorRegistry(auto_describe=True)
#: How often the relay and the job worker refresh the gauges they measure with a query
#: (outbox depth and lag, jobs queued): one cheap indexed count per tenant each time.
METRICS_INTERVAL_S = 15.0

#: Upper bounds of the request latency buckets as Prometheus writes them (``le``), +Inf last.
_LE = [*(repr(b / 1000) for b in LATENCY_BOUNDS_MS), "+Inf"]  # as prometheus_client writes


class RequestDurations(Collector):
    """The request latency histogram ``tenantry_http_request_duration_seconds{route, method,
    status, plan}``, kept as plain per-label-set counts that request accounting adds to
    (``add``, with the bucket index it already computed for the SLO counters) and rendered
    as a histogram at scrape time. Why not prometheus_client's ``Histogram``: it takes a lock
    and walks its buckets in Python on every observation, and the request path pays for
    every one of them (docs/performance.md, "Measurements behind the code")."""

    def __init__(self) -> None:
        #: (route, method, status, plan) -> [count per bucket..., sum of seconds]
        self.rows: dict[tuple[str, str, int, str], list[float]] = {}

    def add(self, key: tuple[str, str, int, str], bucket: int, seconds: float) -> None:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0.0] * (len(_LE) + 1)
        row[bucket] += 1
        row[-1] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        fam = HistogramMetricFamily(
            "tenantry_http_request_duration_seconds",
            "HTTP request latency (server side).",
            labels=["route", "method", "status", "plan"],
        )
        for (route, method, status, plan), row in list(self.rows.items()):
            buckets, total = [], 0.0
            for le, n in zip(_LE, row, strict=False):
                total += n
                buckets.append((le, total))
            fam.add_metric([route, method, str(status), plan], buckets, row[-1])
        yield fam


REQUEST_DURATION = RequestDurations()
REGISTRY.register(REQUEST_DURATION)


class LightHistogram(Collector):
    """A histogram for hot paths, as ``RequestDurations`` is kept and for the same reason:
    plain per-label-set bucket counts (``observe``: a bisect and two additions, no lock),
    rendered as a Prometheus histogram at scrape time."""

    def __init__(self, name: str, doc: str, labels: Sequence[str], bounds_s: Sequence[float]):
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.bounds = tuple(bounds_s)
        self._le = [*(repr(b) for b in self.bounds), "+Inf"]
        #: label values -> [count per bucket..., sum of seconds]
        self.rows: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        row = self.rows.get(labels)
        if row is None:
            row = self.rows[labels] = [0.0] * (len(self._le) + 1)
        row[bisect_left(self.bounds, seconds)] += 1
        row[-1] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        for labels, row in list(self.rows.items()):
            buckets, total = [], 0.0
            for le, n in zip(self._le, row, strict=False):
                total += n
                buckets.append((le, total))
            fam.add_metric(list(labels), buckets, row[-1])
        yield fam


#: Authorization decisions (capabilities/authz): ``source`` is ``decision_cache`` (answered
#: from the per-process decision cache) or ``evaluated`` (policy set consulted).
AUTHZ_DECISION_DURATION = LightHistogram(
    "tenantry_authz_decision_duration_seconds",
    "Authorization decision latency (without its audit record).",
    ["source"],
    (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.1),
)
REGISTRY.register(AUTHZ_DECISION_DURATION)
OUTBOX_DEPTH = Gauge(
    "tenantry_outbox_depth", "Outbox rows not yet delivered.", ["store"], registry=REGISTRY
)
OUTBOX_LAG = Gauge(
    "tenantry_outbox_lag_seconds",
    "Age of the oldest undelivered outbox row.",
    ["store"],
    registry=REGISTRY,
)
CONSUMER_ERRORS = Counter(
    "tenantry_consumer_errors_total",
    "Message consumer failures.",
    ["consumer"],
    registry=REGISTRY,
)
#: ``result``: ``l1_hit`` / ``hit`` / ``miss``. Prefix ``authz:permissions`` is the
#: permission lookup (its ``l1_hit`` includes authz's in-process policy snapshot), so its
#: hit rate is the permission-cache hit rate (docs/operations.md, "Cache").
CACHE_REQUESTS = Counter(
    "tenantry_cache_requests_total",
    "Cache lookups by backend, key prefix and result.",
    ["backend", "prefix", "result"],
    registry=REGISTRY,
)
RATELIMIT_REJECTIONS = Counter(
    "tenantry_ratelimit_rejections_total",
    "Requests refused with 429.",
    ["plan", "scope"],
    registry=REGISTRY,
)
#: Jobs waiting to run, by kind (the export queue is ``kind="exports.run"``): measured by the
#: job worker every ``METRICS_INTERVAL_S``.
JOBS_QUEUED = Gauge(
    "tenantry_jobs_queued", "Background jobs queued, by kind.", ["kind"], registry=REGISTRY
)
ERRORS_CAPTURED = Counter(
    "tenantry_errors_captured_total",
    "Unhandled exceptions captured.",
    ["source"],
    registry=REGISTRY,
)


class DbPoolCollector(Collector):
    """Pool size / in use / idle / waiting for every pool of the registered databases."""

    def __init__(self) -> None:
        self.databases: list[Database] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["pool"]
        fams = {
            k: GaugeMetricFamily(f"tenantry_db_pool_{k}", f"Connections {k}.", labels=labels)
            for k in ("size", "in_use", "idle", "waiting")
        }
        for db in self.databases:
            for (srv, dbname), pool in list(db._pools.items()):
                name = f"{srv}/{dbname}"
                size, idle = pool.get_size(), pool.get_idle_size()
                fams["size"].add_metric([name], size)
                fams["idle"].add_metric([name], idle)
                fams["in_use"].add_metric([name], size - idle)
                fams["waiting"].add_metric([name], _waiting(pool))
        yield from fams.values()


def _waiting(pool: Any) -> int:
    """Tasks blocked in ``acquire``: asyncpg keeps them as getters of its private queue."""
    queue = getattr(pool, "_queue", None)
    getters = getattr(queue, "_getters", None)
    return sum(1 for f in getters if not f.done()) if getters is not None else 0


POOLS = DbPoolCollector()
REGISTRY.register(POOLS)


def render() -> bytes:
    return generate_latest(REGISTRY)
