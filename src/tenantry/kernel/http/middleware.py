"""Pure ASGI middleware: request id, and the tenant context from the verified token.

The tenant is taken only from a verified bearer token, never from the request body, path or
a header a client could choose. A bad token is a 401, and so is the token of a user or API
client that was disabled or removed from the tenant since it was issued (checked per request,
cached, invalidated by NOTIFY: kernel/auth/status); a token of a suspended tenant is a 403
(problem+json) before any route runs. A database that cannot be reached while the tenant or
the principal's status is looked up is a 503 ``database-unavailable`` with ``Retry-After``.
Without a token the request goes on with no tenant: routes that need one say so with ``require``.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.kernel.auth.tokens import TokenError
from tenantry.kernel.db.errors import database_unavailable
from tenantry.kernel.http.problems import database_unavailable_response, problem_response
from tenantry.kernel.tenancy.context import TenantContext, reset_context, set_context
from tenantry.kernel.tenancy.model import TenantStatus

if TYPE_CHECKING:
    from tenantry.kernel.platform import Platform

_log = logging.getLogger("tenantry.http")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, platform: Platform) -> None:
        self.app = app
        self.platform = platform

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        auth = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if 0 < len(candidate) <= 128 and candidate.isprintable():
                    request_id = candidate
            elif name == b"authorization":
                auth = value.decode("latin-1")
        request_id = request_id or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], rid_header]
                # The status the client gets, for the observability middleware inside (one
                # send wrapper per request instead of two).
                state["status"] = message["status"]
            await send(message)

        try:
            ctx = None
            scheme, _, token = (auth or "").partition(" ")
            if scheme.lower() == "bearer":
                # Other schemes (Basic for client_credentials) go on without a principal.
                if not token.strip():
                    await self._reject(
                        scope,
                        receive,
                        send_with_id,
                        401,
                        "unauthorized",
                        "Unauthorized",
                        "empty bearer token",
                        request_id,
                    )
                    return
                try:
                    principal = await self.platform.tokens.verify(token.strip())
                except TokenError as exc:
                    await self._reject(
                        scope,
                        receive,
                        send_with_id,
                        401,
                        "invalid-token",
                        "Invalid token",
                        str(exc),
                        request_id,
                    )
                    return
                tenant = await self.platform.catalog.get(principal.tenant_id)
                if tenant is None:
                    await self._reject(
                        scope,
                        receive,
                        send_with_id,
                        401,
                        "invalid-token",
                        "Invalid token",
                        "the token's tenant does not exist",
                        request_id,
                    )
                    return
                if tenant.status is not TenantStatus.ACTIVE:
                    await self._reject(
                        scope,
                        receive,
                        send_with_id,
                        403,
                        "tenant-suspended",
                        "Tenant suspended",
                        f"tenant {tenant.slug!r} is {tenant.status.value}",
                        request_id,
                    )
                    return
                if not await self.platform.principals.active(tenant, principal):
                    await self._reject(
                        scope,
                        receive,
                        send_with_id,
                        401,
                        "invalid-token",
                        "Invalid token",
                        "the token's user or client is disabled or no longer a member of"
                        " the tenant",
                        request_id,
                    )
                    return
                ctx = TenantContext(tenant, principal)
                scope["state"]["principal"] = principal
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            # The catalog or the principal status could not be read: the database is gone for
            # the moment. A 503 the client can retry, not a 500 (kernel/db/errors).
            _log.warning("database unavailable resolving the tenant of %s: %s", scope["path"], exc)
            response = database_unavailable_response(request_id)  # X-Request-Id included
            await response(scope, receive, send)
            return
        token_ = set_context(ctx)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_context(token_)

    @staticmethod
    async def _reject(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        slug: str,
        title: str,
        detail: str,
        request_id: str,
    ) -> None:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
        response = problem_response(
            status, slug, title, detail, request_id=request_id, headers=headers
        )
        await response(scope, receive, send)
