"""Traces: W3C propagation through message headers, HTTP server spans that continue an
incoming traceparent, SQL statement spans, and the PostgreSQL span store."""

from __future__ import annotations

import httpx

from tenantry.kernel.observability import tracing
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
