"""The observability middleware (pure ASGI): one span, one log line, one histogram
observation and one SLO count per request; serves /metrics.

It runs inside the request-context middleware, so the tenant, principal and request id are
already known. Kept cheap: no allocation beyond a few small dicts, no I/O (metrics are
flushed by background tasks).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.kernel.observability import metrics, tracing
from tenantry.kernel.tenancy.context import current_principal, current_tenant

if TYPE_CHECKING:
    from tenantry.kernel.observability.hub import Observability

UNMATCHED = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The matched route's template with its router prefix (``/api/v1/x/{id}``), never the
    raw path: bounded label cardinality. FastAPI keeps included routers' routes unprefixed
    in ``scope["route"]``, so the prefix is recovered from the path."""
    route = scope.get("route")
    fmt: str | None = getattr(route, "path_format", None)
    if fmt is None:
        return UNMATCHED
    path: str = scope["path"]
    try:
        suffix = fmt.format(**{k: str(v) for k, v in scope.get("path_params", {}).items()})
    except (KeyError, IndexError, ValueError):
        return fmt
    if suffix and path.endswith(suffix):
        return path[: len(path) - len(suffix)] + fmt
    return fmt


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, hub: Observability) -> None:
        self.app = app
        self.hub = hub
        self.metrics_path = hub.settings.metrics_path if hub.settings.metrics_enabled else None
        self.log = structlog.get_logger("tenantry.http")

    async def _metrics(self, send: Send) -> None:
        body = metrics.render()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == self.metrics_path:
            await self._metrics(send)
            return
        started = time.perf_counter()
        status = 500
        state = scope.setdefault("state", {})
        method: str = scope["method"]
        tenant = current_tenant()
        principal = current_principal()
        carrier: dict[str, str] | None = None
        for name, value in scope["headers"]:
            if name == b"traceparent" or name == b"tracestate":
                carrier = carrier or {}
                carrier[name.decode()] = value.decode("latin-1")

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        ctx = tracing.extract(carrier) if carrier else None
        with tracing.tracer().start_as_current_span(
            method, context=ctx, kind=tracing.SpanKind.SERVER
        ) as span:
            sc = span.get_span_context()
            fields: dict[str, Any] = {"request_id": state.get("request_id")}
            if sc.is_valid:
                fields["trace_id"] = format(sc.trace_id, "032x")
                fields["span_id"] = format(sc.span_id, "016x")
            if tenant is not None:
                fields["tenant_id"] = str(tenant.id)
            if principal is not None:
                fields["principal"] = principal.subject
            state["obs"] = fields
            tokens = structlog.contextvars.bind_contextvars(**fields)
            try:
                await self.app(scope, receive, send_status)
            except Exception as exc:
                status = 500
                tracing.set_error(span, exc)
                raise
            finally:
                duration = time.perf_counter() - started
                route = route_template(scope)
                plan = tenant.plan if tenant is not None else "none"
                if span.is_recording():
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.request.method", method)
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    if tenant is not None:
                        span.set_attribute("tenant.id", str(tenant.id))
                    if status >= 500:
                        span.set_status(tracing.StatusCode.ERROR)
                metrics.REQUEST_DURATION.labels(route, method, str(status), plan).observe(duration)
                self.hub.recorder.record(method, route, status, duration)
                self.log.info(
                    "request",
                    method=method,
                    route=route,
                    path=scope["path"],
                    status=status,
                    duration_ms=round(duration * 1000, 3),
                )
                structlog.contextvars.reset_contextvars(**tokens)
