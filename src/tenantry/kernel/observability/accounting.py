"""Per-request accounting: the Prometheus latency histogram, the SLO minute counters and the
request log line, from one record per request.

Where request lines go to the buffered stdout (JSON logs, the production set-up), the request
path only appends a tuple; the hub's one-second flusher, ``/metrics``, the SLO flush and
shutdown account the pending records in one batch (``drain``). Nothing is lost or reordered
that was not already: the buffered log lines were written to stdout only at that flush too,
and every record keeps its own timestamp and duration. Why: measured in the full app in
process (``bench/observability.py``'s in-process part), the three cost several times more per
request when done inline (code and data cold between the requests' other work) than in a
batch (docs/performance.md, "Measurements behind the code"). Elsewhere (console logs, a test's
stream, structlog reconfigured) each request is accounted at once, as before.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from tenantry.kernel.observability import logs, metrics
from tenantry.kernel.observability.settings import LATENCY_BOUNDS_MS

if TYPE_CHECKING:
    from tenantry.kernel.observability.slo import RequestRecorder

__all__ = ["RequestAccounting", "drain_all"]

_log = logging.getLogger("tenantry.observability")

#: (method, route template, path, status, duration s, time.time(), plan, log fields)
Record = tuple[str, str, str, int, float, float, str, dict[str, Any]]


class RequestAccounting:
    #: Pending records are accounted at once past this many (memory stays bounded when the
    #: flusher falls behind, e.g. a blocked event loop).
    max_pending = 5_000

    def __init__(self, recorder: RequestRecorder) -> None:
        self.recorder = recorder
        self._pending: list[Record] = []
        _live.add(self)

    def add(self, record: Record) -> None:
        if logs.deferred():
            pending = self._pending
            pending.append(record)
            if len(pending) >= self.max_pending:
                self.drain()
        else:
            self._account(record)

    def drain(self) -> int:
        """Account every pending record (oldest first); returns how many."""
        pending, self._pending = self._pending, []
        for record in pending:
            try:
                self._account(record)
            except Exception:  # one bad record must not lose the others' metrics and lines
                _log.exception("request accounting failed for %s %s", record[0], record[1])
        return len(pending)

    def _account(self, record: Record) -> None:
        method, route, path, status, duration, now, plan, fields = record
        ms = duration * 1000.0
        bucket = bisect_left(LATENCY_BOUNDS_MS, ms)  # one bisect for the histogram and SLO
        metrics.REQUEST_DURATION.add((route, method, status, plan), bucket, duration)
        self.recorder.add(int(now) // 60 * 60, method, route, status, ms, bucket)
        logs.request_line(method, route, path, status, round(ms, 3), now, fields)


#: Every accounting of the process, drained at exit (before ``logs.flush``, registered
#: earlier, runs): a process that ends without ``Observability.close`` keeps its last lines.
_live: weakref.WeakSet[RequestAccounting] = weakref.WeakSet()


@atexit.register
def drain_all() -> None:
    """Drain every accounting of the process (at exit; benchmarks that run no flusher)."""
    for accounting in list(_live):
        accounting.drain()
