"""The rate-limit middleware: per tenant (and per route where the plan says), by plan.

Runs inside the request-context middleware, so the tenant is known. Every limited response
carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``; a refused one is
429 problem+json with ``Retry-After`` (whole seconds, at least 1). Requests without a tenant
(the token endpoint, health checks) are limited per client IP with ``anonymous_rate_per_s``.
A backend failure lets the request through (logged): the limiter never takes the API down.
"""

from __future__ import annotations

import logging
import math

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.capabilities.entitlements.plans import Plans
from tenantry.capabilities.ratelimit.backends import Limiter, Verdict
from tenantry.kernel.http.problems import problem_response
from tenantry.kernel.observability import metrics
from tenantry.kernel.tenancy.context import current_tenant

_log = logging.getLogger(__name__)
EXEMPT = ("/healthz", "/readyz")


def headers_of(v: Verdict) -> list[tuple[bytes, bytes]]:
    return [
        (b"ratelimit-limit", str(v.limit).encode()),
        (b"ratelimit-remaining", str(v.remaining).encode()),
        (b"ratelimit-reset", str(max(0, math.ceil(v.reset_s))).encode()),
    ]


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limiter: Limiter,
        plans: Plans,
        anonymous_rate_per_s: float = 20.0,
        anonymous_burst: int = 40,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.plans = plans
        self.anon = (anonymous_rate_per_s, anonymous_burst)

    async def _verdict(self, scope: Scope) -> tuple[Verdict | None, str]:
        """The limiter's verdict and which limit gave it (the rejection metric's ``scope``
        label: ``anonymous``, ``tenant`` or ``route:<name>``, bounded by the config)."""
        tenant = current_tenant()
        if tenant is None:
            client = scope.get("client")
            key = f"ip:{client[0] if client else '-'}"
            return await self.limiter.hit(key, *self.anon), "anonymous"
        plan = await self.plans.for_tenant(tenant)
        route = plan.route_limit(scope.get("method", "GET"), scope.get("path", ""))
        if route is not None:
            name, limit = route
            key = f"t:{tenant.id}:{name}"
            return await self.limiter.hit(key, limit.rate_per_s, limit.burst), f"route:{name}"
        return await self.limiter.hit(f"t:{tenant.id}", plan.rate_per_s, plan.burst), "tenant"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in EXEMPT:
            await self.app(scope, receive, send)
            return
        try:
            verdict, limit = await self._verdict(scope)
        except Exception:
            _log.exception("rate limiter unavailable; request let through")
            verdict, limit = None, ""
        if verdict is None:
            await self.app(scope, receive, send)
            return
        extra = headers_of(verdict)
        if not verdict.allowed:
            tenant = current_tenant()
            plan = tenant.plan if tenant is not None else "none"
            metrics.RATELIMIT_REJECTIONS.labels(plan, limit).inc()
            retry = str(max(1, math.ceil(verdict.retry_after_s)))
            response = problem_response(
                429,
                "rate-limited",
                "Too many requests",
                f"rate limit reached; retry in {retry} s",
                request_id=scope.get("state", {}).get("request_id"),
                headers={
                    "Retry-After": retry,
                    **{k.decode(): v.decode() for k, v in extra},
                },
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
