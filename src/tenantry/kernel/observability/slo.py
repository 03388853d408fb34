"""SLOs and error budgets from request metrics kept in PostgreSQL at minute granularity.

The middleware counts each request in process (``RequestRecorder.record``: a dict update and
a bisect); a background task flushes the counts every few seconds as one upsert per
(minute, method, route template). Several processes add up in the same rows.

SLIs (requirements 003 §3): availability = non-5xx / (total - 4xx); latency = share of
requests at or under the threshold (a bucket bound). Over the window (30 days): error budget
remaining = 1 - bad share / (1 - target). Burn rate over a window = bad share / (1 - target);
fast burn when the 1 h and 5 min burn rates are both >= 14.4 (2 % of a 30-day budget in an
hour), slow burn when the 6 h and 30 min ones are both >= 6 (5 % in 6 hours). Policy state
(§3.3): healthy above 50 % remaining, exhausted below 10 %, stressed between.

Cache hit-rate SLOs (``[slo] cache``, per key prefix): SLI = hits / (hits + misses) of the
cache's counters as every process flushed them to ``tenantry.cache_stats`` (``cache_report``);
``ok`` at or above the target, ``below-target`` under it, ``alert`` under ``alert_below``,
``no-data`` with fewer than ``min_lookups`` lookups.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tenantry.kernel.observability import sql as q
from tenantry.kernel.observability.settings import (
    LATENCY_BOUNDS_MS,
    CacheObjective,
    Objective,
    SloSettings,
)

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database

NBUCKETS = len(LATENCY_BOUNDS_MS) + 1  # the last one is +Inf
#: Disjoint age segments of the window: <=5m, 5-30m, 30m-1h, 1-6h, older.
SEGMENTS = ("5m", "30m", "1h", "6h", "window")
FAST_BURN = 14.4
SLOW_BURN = 6.0


class RequestRecorder:
    """Per-minute request counts, aggregated in process and flushed in batches."""

    def __init__(self) -> None:
        # (minute epoch, method, route) -> [total, 5xx, 4xx, duration_ms, *buckets]
        self._cur: dict[tuple[int, str, str], list[float]] = {}

    def record(
        self, method: str, route: str, status: int, duration_s: float, now: float | None = None
    ) -> None:
        """Count one request; ``now`` (``time.time()``) if the caller has read it already."""
        ms = duration_s * 1000.0
        self.add(
            int(time.time() if now is None else now) // 60 * 60,
            method,
            route,
            status,
            ms,
            bisect_left(LATENCY_BOUNDS_MS, ms),
        )

    def add(
        self, minute: int, method: str, route: str, status: int, ms: float, bucket: int
    ) -> None:
        """``record`` with the minute (epoch seconds) and latency bucket already computed."""
        key = (minute, method, route)
        row = self._cur.get(key)
        if row is None:
            row = self._cur[key] = [0.0] * (4 + NBUCKETS)
        row[0] += 1
        if status >= 500:
            row[1] += 1
        elif status >= 400:
            row[2] += 1
        row[3] += ms
        row[4 + bucket] += 1

    def drain(self) -> list[tuple[Any, ...]]:
        cur, self._cur = self._cur, {}
        return [
            (
                datetime.fromtimestamp(minute, UTC),
                method,
                route,
                int(r[0]),
                int(r[1]),
                int(r[2]),
                r[3],
                [int(b) for b in r[4:]],
            )
            for (minute, method, route), r in cur.items()
        ]

    async def flush(self, db: Database) -> int:
        rows = self.drain()
        if rows:
            async with db.platform_unit_of_work() as uow:
                await uow.executemany(q.UPSERT_REQUEST_MINUTE, rows)
        return len(rows)


@dataclass
class Counts:
    total: int = 0
    server_errors: int = 0
    client_errors: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * NBUCKETS)

    def add(self, other: Counts) -> None:
        self.total += other.total
        self.server_errors += other.server_errors
        self.client_errors += other.client_errors
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


#: (method, route, segment index) -> counts
Segments = dict[tuple[str, str, int], Counts]


def matches(obj: Objective, method: str, route: str) -> bool:
    if obj.methods and method not in obj.methods:
        return False
    if not obj.routes:
        return True
    for pattern in obj.routes:
        if pattern.endswith("*"):
            if route.startswith(pattern[:-1]):
                return True
        elif route == pattern:
            return True
    return False


def _good_bad(kind: str, obj: Objective, c: Counts) -> tuple[int, int]:
    if kind == "availability":
        valid = c.total - c.client_errors
        return valid - c.server_errors, c.server_errors
    assert obj.latency_ms is not None
    upto = LATENCY_BOUNDS_MS.index(obj.latency_ms) + 1
    good = sum(c.buckets[:upto])
    return good, c.total - good


def _burn(good: int, bad: int, target: float) -> float:
    n = good + bad
    return 0.0 if n == 0 else (bad / n) / (1 - target)


def state_of(remaining: float, s: SloSettings) -> str:
    if remaining > s.healthy_above:
        return "healthy"
    if remaining < s.exhausted_below:
        return "exhausted"
    return "stressed"


def evaluate(segments: Segments, settings: SloSettings) -> list[dict[str, Any]]:
    """Every SLO's SLI, budget, burn rates and state (pure: tested on hand fixtures)."""
    out: list[dict[str, Any]] = []
    for obj in settings.objectives:
        per_seg = [Counts() for _ in SEGMENTS]
        for (method, route, seg), c in segments.items():
            if matches(obj, method, route):
                per_seg[seg].add(c)
        kinds: list[tuple[str, float]] = []
        if obj.availability is not None:
            kinds.append(("availability", obj.availability))
        if obj.latency_ms is not None:
            kinds.append(("latency", obj.latency_target))
        for kind, target in kinds:
            cumulative: list[tuple[int, int]] = []
            g = b = 0
            for c in per_seg:
                dg, db = _good_bad(kind, obj, c)
                g, b = g + dg, b + db
                cumulative.append((g, b))
            good, bad = cumulative[-1]
            n = good + bad
            sli = 1.0 if n == 0 else good / n
            remaining = 1.0 - (0.0 if n == 0 else (bad / n) / (1 - target))
            burn = {SEGMENTS[i]: round(_burn(*cumulative[i], target), 4) for i in range(4)}
            out.append(
                {
                    "slo": f"{obj.name}:{kind}",
                    "objective": obj.name,
                    "kind": kind,
                    "target": target,
                    "threshold_ms": obj.latency_ms if kind == "latency" else None,
                    "window_days": settings.window_days,
                    "requests": n,
                    "good": good,
                    "bad": bad,
                    "sli": round(sli, 6),
                    "budget_remaining": round(remaining, 6),
                    "burn_rate": burn,
                    "fast_burn": burn["1h"] >= FAST_BURN and burn["5m"] >= FAST_BURN,
                    "slow_burn": burn["6h"] >= SLOW_BURN and burn["30m"] >= SLOW_BURN,
                    "state": state_of(remaining, settings),
                }
            )
    return out


async def load_segments(db: Database, window_days: int, now: datetime | None = None) -> Segments:
    now = now or datetime.now(UTC)
    window = timedelta(days=window_days)
    async with db.platform_unit_of_work() as uow:
        totals = await uow.fetch(q.REQUEST_SEGMENT_TOTALS, now, window)
        buckets = await uow.fetch(q.REQUEST_SEGMENT_BUCKETS, now, window)
    segs: Segments = {}
    for r in totals:
        segs[(r["method"], r["route"], r["seg"])] = Counts(
            r["total"], r["server_errors"], r["client_errors"]
        )
    for r in buckets:
        c = segs.get((r["method"], r["route"], r["seg"]))
        if c is not None and 1 <= r["i"] <= NBUCKETS:
            c.buckets[r["i"] - 1] = r["n"]
    return segs


async def report(
    db: Database, settings: SloSettings, now: datetime | None = None
) -> list[dict[str, Any]]:
    return evaluate(await load_segments(db, settings.window_days, now), settings)


def cache_verdict(obj: CacheObjective, hits: int, misses: int) -> dict[str, Any]:
    """One cache hit-rate SLO from its counters (pure: tested on hand figures)."""
    n = hits + misses
    rate = None if n == 0 else hits / n
    if rate is None or n < obj.min_lookups:
        state = "no-data"
    elif rate < obj.alert_below:
        state = "alert"
    elif rate < obj.target:
        state = "below-target"
    else:
        state = "ok"
    return {
        "slo": f"cache-{obj.prefix}:hit_rate",
        "prefix": obj.prefix,
        "target": obj.target,
        "alert_below": obj.alert_below,
        "lookups": n,
        "hits": hits,
        "misses": misses,
        "sli": None if rate is None else round(rate, 6),
        "state": state,
        "alert": state == "alert",
    }


async def cache_report(db: Database, settings: SloSettings) -> list[dict[str, Any]]:
    """Every cache hit-rate SLO from the flushed counters (none when the cache capability's
    table is absent)."""
    async with db.platform_unit_of_work() as uow:
        rows = await uow.fetch(q.CACHE_COUNTS) if await uow.fetchval(q.CACHE_STATS_EXISTS) else []
    counts = {r["prefix"]: (r["hits"], r["misses"]) for r in rows}
    return [cache_verdict(o, *counts.get(o.prefix, (0, 0))) for o in settings.cache]
