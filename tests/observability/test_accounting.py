"""Request accounting: deferred to one batch when request lines go to the buffered stdout,
without losing, reordering or misattributing a request's metrics, SLO minute or log line."""

from __future__ import annotations

import io
import time

import httpx
import orjson
import pytest
import structlog

from tenantry.kernel.observability import accounting, logs, metrics
from tenantry.kernel.observability.slo import RequestRecorder
from tenantry.kernel.platform import Platform


def _count(route: str, status: int = 200) -> float:
    """Requests seen for ``route`` so far by the histogram (all plans)."""
    return sum(
        sum(row[:-1])
        for key, row in metrics.REQUEST_DURATION.rows.items()
        if key[0] == route and key[2] == status
    )


def test_deferred_records_wait_for_drain_then_all_land_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    logs.configure("json", "INFO", out)
    try:
        monkeypatch.setattr(logs, "deferred", lambda: True)
        acc = accounting.RequestAccounting(RequestRecorder())
        route = f"/acc/{time.monotonic_ns()}"
        now = time.time()
        for i in range(3):
            acc.add(("GET", route, route, 200, 0.002 * (i + 1), now + i, "free", {"request_id": i}))
        assert _count(route) == 0
        assert "/acc/" not in out.getvalue()
        assert acc.drain() == 3
        assert _count(route) == 3
        lines = [orjson.loads(x) for x in out.getvalue().splitlines() if route in x]
        assert [x["request_id"] for x in lines] == [0, 1, 2]
        assert [x["duration_ms"] for x in lines] == [2.0, 4.0, 6.0]
        # Each line keeps its own request time, not the drain's.
        assert lines[0]["timestamp"] != lines[2]["timestamp"]
        minutes = acc.recorder.drain()
        assert sum(m[3] for m in minutes if m[2] == route) == 3
        # Past max_pending the batch is accounted at once (bounded memory).
        monkeypatch.setattr(accounting.RequestAccounting, "max_pending", 2)
        acc.add(("GET", route, route, 200, 0.001, now, "free", {}))
        assert _count(route) == 3
        acc.add(("GET", route, route, 200, 0.001, now, "free", {}))
        assert _count(route) == 5
    finally:
        structlog.reset_defaults()


def test_a_bad_record_does_not_lose_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "deferred", lambda: True)
    acc = accounting.RequestAccounting(RequestRecorder())
    route = f"/bad/{time.monotonic_ns()}"
    acc.add(("GET", route, route, 200, 0.001, time.time(), "free", {}))
    acc.add(("GET", route, route, 200, "not a duration", time.time(), "free", {}))  # type: ignore[arg-type]
    acc.add(("GET", route, route, 200, 0.001, time.time(), "free", {}))
    assert acc.drain() == 3
    assert _count(route) == 2


def test_not_deferred_when_lines_go_elsewhere() -> None:
    out = io.StringIO()
    logs.configure("json", "INFO", out)  # a stream of its own: no one-second flush to wait for
    try:
        assert not logs.deferred()
    finally:
        structlog.reset_defaults()
    assert not logs.deferred()


async def test_metrics_and_slo_flush_account_pending_requests_first(
    platform: Platform, obs_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "deferred", lambda: True)
    before = _count("/test/ok")
    r = await obs_client.get("/test/ok")
    assert r.status_code == 200
    body = (await obs_client.get("/metrics")).text
    assert _count("/test/ok") == before + 1
    assert 'route="/test/ok"' in body
    await obs_client.get("/test/ok")
    await platform.observability.flush()  # the SLO minutes to PostgreSQL, pending ones first
    assert _count("/test/ok") == before + 2


async def test_status_is_recorded_without_the_request_context_middleware(
    platform: Platform,
) -> None:
    """Used on its own (no request-context middleware to note the status), the middleware
    captures the status with a send wrapper of its own."""
    from starlette.types import Message, Receive, Scope, Send

    from tenantry.kernel.observability.middleware import ObservabilityMiddleware

    async def teapot(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    before = _count("<unmatched>", 418)
    mw = ObservabilityMiddleware(teapot, platform.observability)
    scope = {"type": "http", "method": "GET", "path": "/teapot", "headers": []}
    await mw(scope, receive, send)
    platform.observability.accounting.drain()
    assert sent[0]["status"] == 418
    assert _count("<unmatched>", 418) == before + 1
