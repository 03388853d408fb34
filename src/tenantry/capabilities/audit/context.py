"""Request metadata for audit records (request id, trace id, client ip), per request.

A pure ASGI middleware sets it inside the request-context middleware; outside requests
(CLI, jobs) it is empty.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class RequestMeta:
    request_id: str | None = None
    trace_id: str | None = None
    ip: str | None = None


_EMPTY = RequestMeta()
_meta: ContextVar[RequestMeta | None] = ContextVar("tenantry_audit_request", default=None)


def current_meta() -> RequestMeta:
    return _meta.get() or _EMPTY


def _trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header (``00-<32 hex>-<16 hex>-<2 hex>``)."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1]
    return None


class RequestMetaMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        traceparent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
        client = scope.get("client")
        meta = RequestMeta(
            request_id=scope.get("state", {}).get("request_id"),
            trace_id=_trace_id(traceparent),
            ip=client[0] if client else None,
        )
        token = _meta.set(meta)
        try:
            await self.app(scope, receive, send)
        finally:
            _meta.reset(token)
