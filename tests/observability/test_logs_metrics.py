"""Request logs carry tenant and request ids; /metrics has bounded labels."""

from __future__ import annotations

import io

import httpx
import orjson
import pytest
import structlog

from tenantry.kernel.observability import logs
from tenantry.kernel.platform import Platform
from tests.conftest import MakeTenant


async def test_log_lines_carry_tenant_request_and_trace_ids(
    obs_client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    out = io.StringIO()
    logs.configure("json", "INFO", out)
    try:
        r = await obs_client.get("/api/v1/identity/me", headers={**t.auth, "X-Request-Id": "rq-1"})
        assert r.status_code == 200
        await obs_client.get("/test/ok")
    finally:
        structlog.reset_defaults()
    lines = [orjson.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    mine = [x for x in lines if x.get("event") == "request" and x.get("request_id") == "rq-1"]
    assert len(mine) == 1, lines
    line = mine[0]
    assert line["tenant_id"] == str(t.tenant.id)
    assert line["principal"]
    assert line["route"] == "/api/v1/identity/me"
    assert line["status"] == 200
    assert line["level"] == "info"
    assert line["duration_ms"] > 0
    assert len(line["trace_id"]) == 32
    assert len(line["span_id"]) == 16
    assert "timestamp" in line
    anon = [x for x in lines if x.get("route") == "/test/ok"]
    assert anon
    assert "tenant_id" not in anon[0]
    assert anon[0]["request_id"]


async def test_lines_logged_inside_a_request_carry_its_ids(
    obs_client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    out = io.StringIO()
    logs.configure("json", "INFO", out)
    try:
        r = await obs_client.get("/test/logs", headers={**t.auth, "X-Request-Id": "rq-inside"})
        assert r.status_code == 200
    finally:
        structlog.reset_defaults()
    lines = [orjson.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    mine = [x for x in lines if x.get("request_id") == "rq-inside"]
    events = {x["event"] for x in mine}
    assert events == {"inside the handler", "stdlib inside the handler", "request"}, lines
    request = next(x for x in mine if x["event"] == "request")
    for x in mine:
        assert x["trace_id"] == request["trace_id"]
        assert x["span_id"] == request["span_id"]
        assert x["tenant_id"] == str(t.tenant.id)
        assert x["principal"] == request["principal"]
        assert x["timestamp"].endswith("Z")
    assert {x["level"] for x in mine} == {"info", "warning"}


async def test_request_line_goes_through_structlog_when_not_configured_for_json(
    obs_client: httpx.AsyncClient,
) -> None:
    out = io.StringIO()
    logs.configure("json", "INFO", out)
    structlog.reset_defaults()  # someone else reconfigured logging: no direct writes to `out`
    await obs_client.get("/test/ok", headers={"X-Request-Id": "rq-reset"})
    assert "rq-reset" not in out.getvalue()


async def test_console_format_is_human_readable(obs_client: httpx.AsyncClient) -> None:
    out = io.StringIO()
    logs.configure("console", "INFO", out)
    try:
        await obs_client.get("/test/ok", headers={"X-Request-Id": "rq-console"})
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    assert "request" in text
    assert "request_id=rq-console" in text
    assert not text.lstrip().startswith("{")


async def test_metrics_endpoint_has_route_templates_and_plans_never_tenant_ids(
    platform: Platform, obs_client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    await obs_client.get("/test/boom/12345", headers=t.auth)
    await obs_client.get("/api/v1/identity/me", headers=t.auth)
    await obs_client.get("/no/such/path/999")
    r = await obs_client.get("/metrics")
    assert r.status_code == 200
    body = r.text
    assert "tenantry_http_request_duration_seconds_bucket" in body
    assert 'route="/test/boom/{n}"' in body
    assert 'route="/api/v1/identity/me"' in body
    assert 'plan="free"' in body
    assert 'route="<unmatched>"' in body
    assert "12345" not in body
    assert "/no/such/path" not in body
    assert str(t.tenant.id) not in body
    assert "tenantry_db_pool_in_use" in body
    assert "tenantry_db_pool_waiting" in body
    for name in (
        "tenantry_outbox_depth",
        "tenantry_consumer_errors_total",
        "tenantry_cache_requests_total",
        "tenantry_ratelimit_rejections_total",
        "tenantry_jobs_queued",
        "tenantry_outbox_lag_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in body, name


async def test_job_logs_carry_job_fields_and_failures_are_captured(platform: Platform) -> None:
    out = io.StringIO()
    logs.configure("json", "INFO", out)
    captured: list[tuple[BaseException, dict[str, object]]] = []
    try:
        async with logs.job_context("export", on_error=lambda e, c: captured.append((e, c)), n=3):
            pass
        with pytest.raises(RuntimeError):
            async with logs.job_context("export", on_error=lambda e, c: captured.append((e, c))):
                raise RuntimeError("disk full")
    finally:
        structlog.reset_defaults()
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    done = next(x for x in lines if x["event"] == "job done")
    assert done["job"] == "export"
    assert done["n"] == 3
    assert "duration_ms" in done
    failed = next(x for x in lines if x["event"] == "job failed")
    assert failed["level"] == "error"
    assert failed["error"] == "RuntimeError"
    assert [c for _, c in captured] == [{"job": "export"}]
