"""The observability middleware (pure ASGI): trace ids (a span when spans are recorded) and
one accounting record per request (histogram, SLO count and log line: see ``accounting``);
serves /metrics.

It runs inside the request-context middleware, so the tenant, principal and request id are
already known. Kept cheap: a few small objects per request, no I/O.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.kernel.observability import logs, metrics, tracing
from tenantry.kernel.tenancy.context import current_context

if TYPE_CHECKING:
    from uuid import UUID

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
        self.account = hub.accounting.add
        self.metrics_path = hub.settings.metrics_path if hub.settings.metrics_enabled else None
        #: id(route) -> (route, template with prefix, prefix): see ``_route`` (routes define
        #: ``__eq__`` and so are not hashable; the route is kept to check the id's owner).
        self._routes: dict[int, tuple[Any, str, str]] = {}
        #: Tenant id -> its text (``str(UUID)`` is not free on every request).
        self._tenant_ids: dict[UUID, str] = {}

    async def _metrics(self, send: Send) -> None:
        self.hub.accounting.drain()
        body = metrics.render()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _route(self, scope: Scope) -> str:
        """``route_template`` cached per route object: a route's template with its prefix is
        the same for every request it matches (checked against the path, in case one route
        object were mounted under two prefixes)."""
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        cached = self._routes.get(id(route))
        if cached is not None and cached[0] is route and scope["path"].startswith(cached[2]):
            return cached[1]
        template = route_template(scope)
        fmt: str = getattr(route, "path_format", "")
        prefix = template[: len(template) - len(fmt)] if fmt and template.endswith(fmt) else ""
        if len(self._routes) < 10_000:
            self._routes[id(route)] = (route, template, prefix)
        return template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == self.metrics_path:
            await self._metrics(send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        method: str = scope["method"]
        ctx = current_context()
        tenant = ctx.tenant if ctx is not None else None
        principal = ctx.principal if ctx is not None else None
        traceparent: str | None = None
        tracestate: str | None = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate = value.decode("latin-1")

        # The request-context middleware (always outermost) records the response status in
        # the scope's state; without it, a send wrapper of our own does.
        own_status = "request_id" not in state

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        fields: dict[str, Any] = {"request_id": state.get("request_id")}
        span: Any = None
        span_cm: Any = None
        if not tracing.recording():
            # The common case: ids only, carried by ``fields`` (bound below), no span object.
            fields["trace_id"], fields["span_id"] = tracing.new_ids(traceparent)
        else:
            carrier = {"traceparent": traceparent} if traceparent else None
            if carrier is not None and tracestate:
                carrier["tracestate"] = tracestate
            span_cm = tracing.server_span(method, tracing.extract(carrier) if carrier else None)
            span = span_cm.__enter__()
            sc = span.get_span_context()
            if sc.is_valid:
                fields["trace_id"] = f"{sc.trace_id:032x}"
                fields["span_id"] = f"{sc.span_id:016x}"
        if tenant is not None:
            tenant_id = self._tenant_ids.get(tenant.id)
            if tenant_id is None:
                tenant_id = str(tenant.id)
                if len(self._tenant_ids) < 100_000:
                    self._tenant_ids[tenant.id] = tenant_id
            fields["tenant_id"] = tenant_id
        if principal is not None:
            fields["principal"] = principal.subject
        state["obs"] = fields
        token = logs.bind_request(fields)
        exc_info: tuple[Any, Any, Any] = (None, None, None)
        failed = False
        try:
            await self.app(scope, receive, send_status if own_status else send)
        except BaseException as exc:
            exc_info = (type(exc), exc, exc.__traceback__)
            if isinstance(exc, Exception):
                failed = True
                if span is not None:
                    tracing.set_error(span, exc)
            raise
        finally:
            duration = time.perf_counter() - started
            status = 500 if failed else state.get("status", 500)
            now = time.time()
            route = self._route(scope)
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
            self.account((method, route, path, status, duration, now, plan, fields))
            logs.reset_request(token)
            if span_cm is not None:
                span_cm.__exit__(*exc_info)
