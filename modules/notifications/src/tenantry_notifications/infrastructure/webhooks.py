"""Signed webhooks over HTTP (httpx): retries with exponential backoff, a circuit breaker
per endpoint, and every request sent to an address vetted at that moment (SSRF and DNS
rebinding: see ``infrastructure/targets``)."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson

from tenantry_notifications.contracts import (
    EVENT_HEADER,
    MESSAGE_ID_HEADER,
    SIGNATURE_HEADER,
)
from tenantry_notifications.domain.breaker import CircuitBreaker
from tenantry_notifications.domain.signing import sign
from tenantry_notifications.domain.targets import TargetRefused
from tenantry_notifications.infrastructure.targets import TargetGuard


class WebhookFailed(Exception):
    """Every attempt failed; the message is retried later by the relay or consumer."""


class WebhookRefused(WebhookFailed):
    """The target is (now) a forbidden address: nothing was sent."""


class HttpWebhookSender:
    def __init__(
        self,
        attempts: int = 3,
        backoff_s: float = 0.2,
        timeout_s: float = 5.0,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        guard: TargetGuard | None = None,
    ) -> None:
        self.guard = guard or TargetGuard()
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.breaker = CircuitBreaker(breaker_threshold, breaker_cooldown_s, time.monotonic)
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def deliver(
        self, url: str, secret: str, event: str, message_id: str, body: dict[str, object]
    ) -> int:
        raw = orjson.dumps(body)
        last = ""
        for attempt in range(self.attempts):
            self.breaker.check(url)  # CircuitOpen: fail fast, retried later
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, int(time.time()), raw),
                MESSAGE_ID_HEADER: message_id,
                EVENT_HEADER: event,
            }
            try:
                pinned = await self.guard.pinned(url)
            except TargetRefused as exc:
                # Not a transient failure and not the endpoint's fault to retry here: nothing
                # is sent; the message is retried later (the name may resolve well again).
                raise WebhookRefused(f"{url}: refused: {exc}") from None
            try:
                r = await self.client().post(
                    pinned.url,
                    content=raw,
                    headers={**headers, **pinned.headers},
                    extensions=pinned.extensions,
                )
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code < 300:
                    self.breaker.success(url)
                    return r.status_code
                last = f"HTTP {r.status_code}"
            self.breaker.failure(url)
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.backoff_s * (2**attempt))
        raise WebhookFailed(f"{url}: {last}")
