"""The observability middleware (pure ASGI): one span, one log line, one histogram
observation and one SLO count per request; serves /metrics.

It runs inside the request-context middleware, so the tenant, principal and request id are
already known. Kept cheap: no allocation beyond a few small dicts, no I/O (metrics are
flushed by background tasks).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.kernel.observability import logs, metrics, tracing
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
    params = scope.get("path_params")
    if not params and path.endswith(fmt):
        return path  # a route without parameters: the path is its template
    try:
        suffix = fmt.format(**{k: str(v) for k, v in (params or {}).items()})
    except (KeyError, IndexError, ValueError):
        return fmt
    if suffix and path.endswith(suffix):
        return path[: len(path) - len(suffix)] + fmt
    return fmt


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, hub: Observability) -> None:
        self.app = app
        self.hub = hub
        self.record = hub.recorder.record
        self.metrics_path = hub.settings.metrics_path if hub.settings.metrics_enabled else None
        #: Labelled histogram children by (route, method, status, plan): the label values are
        #: bounded (route templates, methods, statuses, plans), so is this dict; it saves the
        #: label validation and lock of ``labels()`` on every request.
        self._histograms: dict[tuple[str, str, int, str], Any] = {}

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

    def _histogram(self, key: tuple[str, str, int, str]) -> Any:
        child = self._histograms.get(key)
        if child is None:
            route, method, status, plan = key
            child = metrics.REQUEST_DURATION.labels(route, method, str(status), plan)
            self._histograms[key] = child
        return child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == self.metrics_path:
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

        fields: dict[str, Any] = {"request_id": state.get("request_id")}
        span: Any = None
        span_cm: Any = None
        ids_token: object = None
        if carrier is None and not tracing.recording():
            # The common case: a fresh trace id and a span id, no span object to record.
            fields["trace_id"], fields["span_id"], ids_token = tracing.attach_ids()
        else:
            span_cm = tracing.server_span(method, tracing.extract(carrier) if carrier else None)
            span = span_cm.__enter__()
            sc = span.get_span_context()
            if sc.is_valid:
                fields["trace_id"] = f"{sc.trace_id:032x}"
                fields["span_id"] = f"{sc.span_id:016x}"
        if tenant is not None:
            fields["tenant_id"] = str(tenant.id)
        if principal is not None:
            fields["principal"] = principal.subject
        state["obs"] = fields
        token = logs.bind_request(fields)
        exc_info: tuple[Any, Any, Any] = (None, None, None)
        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            exc_info = (type(exc), exc, exc.__traceback__)
            if isinstance(exc, Exception):
                status = 500
                if span is not None:
                    tracing.set_error(span, exc)
            raise
        finally:
            duration = time.perf_counter() - started
            now = time.time()
            route = route_template(scope)
            plan = tenant.plan if tenant is not None else "none"
            if span is not None and span.is_recording():
                span.update_name(f"{method} {route}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if tenant is not None:
                    span.set_attribute("tenant.id", str(tenant.id))
                if status >= 500:
                    span.set_status(tracing.StatusCode.ERROR)
            self._histogram((route, method, status, plan)).observe(duration)
            self.record(method, route, status, duration, now)
            logs.request_line(
                {
                    "method": method,
                    "route": route,
                    "path": path,
                    "status": status,
                    "duration_ms": round(duration * 1000, 3),
                },
                now,
            )
            logs.reset_request(token)
            if span_cm is not None:
                span_cm.__exit__(*exc_info)
            else:
                tracing.detach_ids(ids_token)
