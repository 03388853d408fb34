"""Traces: W3C propagation through message headers, HTTP server spans that continue an
incoming traceparent, SQL statement spans, and the PostgreSQL span store."""

from __future__ import annotations

import io

import httpx
import orjson
import pytest
import structlog

from tenantry.kernel.observability import logs, tracing
from tenantry.kernel.observability.settings import TracingSettings
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tests.conftest import MakeTenant

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


async def test_spans_propagate_through_headers_and_land_in_postgresql(
    platform: Platform, obs_client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    buffer = tracing.setup(TracingSettings(pg_store=True))
    assert buffer is not None
    t = await make_tenant()
    # Producer -> message headers -> consumer, as the messaging engineer would use it.
    with tracing.span("outbox.dispatch", message_type="test.Event.v1") as producer:
        headers = tracing.inject({"message_id": "m-1"})
        ids = tracing.current_ids()
    assert ids is not None
    assert headers["traceparent"].startswith(f"00-{ids[0]}-{ids[1]}-")
    with (
        tracing.continue_trace(headers, "consumer.handle", consumer="reporting") as consumer,
        tenant_scope(t.tenant),
    ):
        async with platform.db.unit_of_work() as uow:
            await uow.fetchval("SELECT 41 + 1")
    assert consumer.get_span_context().trace_id == producer.get_span_context().trace_id
    # An HTTP request continuing the caller's trace.
    r = await obs_client.get(
        "/api/v1/identity/me", headers={**t.auth, "traceparent": f"00-{TRACE}-{PARENT}-01"}
    )
    assert r.status_code == 200
    written = await buffer.flush_to(platform.db)
    assert written >= 3
    async with platform.db.platform_unit_of_work() as uow:
        msg = await uow.fetch(
            "SELECT name, kind, parent_span_id FROM tenantry.otel_spans WHERE trace_id = $1"
            " ORDER BY start_time",
            ids[0],
        )
        http = await uow.fetch(
            "SELECT name, kind, parent_span_id, tenant, attributes"
            " FROM tenantry.otel_spans WHERE trace_id = $1",
            TRACE,
        )
    names = [r["name"] for r in msg]
    assert names[0] == "outbox.dispatch"
    assert "consumer.handle" in names
    assert "SELECT" in names  # the statement inside the consumer's unit of work
    consumer_row = next(r for r in msg if r["name"] == "consumer.handle")
    assert consumer_row["parent_span_id"] == ids[1]
    assert consumer_row["kind"] == "consumer"
    server = next(r for r in http if r["kind"] == "server")
    assert server["name"] == "GET /api/v1/identity/me"
    assert server["parent_span_id"] == PARENT
    assert server["tenant"] == t.tenant.id
    assert server["attributes"]["http.response.status_code"] == 200


def test_ids_only_path_keeps_one_trace_without_span_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing records spans: the request's ids (bound once, as the middleware does) are the
    current span for logs, ``inject``, child spans and consumers."""
    monkeypatch.setattr(tracing, "_recording", False)
    assert tracing.current_ids() is None
    assert tracing.current_traceparent() is None
    trace_id, span_id = tracing.new_ids(f"00-{TRACE}-{PARENT}-01")
    assert trace_id == TRACE
    assert len(span_id) == 16
    assert span_id != PARENT
    for bad in (
        "00-zz-bad",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-01-more",  # version 00 has exactly four fields
        f"ff-{TRACE}-{PARENT}-01",
    ):
        other, _ = tracing.new_ids(bad)
        assert other != TRACE
        assert len(other) == 32
    token = logs.bind_request({"request_id": "rq", "trace_id": trace_id, "span_id": span_id})
    try:
        assert tracing.current_ids() == (trace_id, span_id)
        assert tracing.inject({})["traceparent"] == f"00-{trace_id}-{span_id}-01"
        with tracing.span("child") as child:
            assert not child.is_recording()
            assert tracing.current_ids() == (trace_id, span_id)
        with tracing.continue_trace({"traceparent": f"00-{TRACE}-{PARENT}-01"}, "consume"):
            ids = tracing.current_ids()
            assert ids is not None
            assert ids[0] == TRACE
            assert ids[1] not in (PARENT, span_id)
        assert tracing.current_ids() == (trace_id, span_id)
    finally:
        logs.reset_request(token)
    assert tracing.current_ids() is None


async def test_request_continues_an_incoming_traceparent_without_recording(
    obs_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "_recording", False)
    out = io.StringIO()
    logs.configure("json", "INFO", out)
    try:
        r = await obs_client.get(
            "/test/ok", headers={"X-Request-Id": "rq-tp", "traceparent": f"00-{TRACE}-{PARENT}-01"}
        )
        assert r.status_code == 200
    finally:
        structlog.reset_defaults()
    lines = [orjson.loads(x) for x in out.getvalue().splitlines() if x.startswith("{")]
    line = next(x for x in lines if x.get("request_id") == "rq-tp")
    assert line["trace_id"] == TRACE
    assert line["span_id"] != PARENT
