"""What the edge input guard costs a request (kernel/http/input_guard).

    .venv/bin/python -m bench.input_guard        # no database needed

One run, one table (per request, microseconds; median of 7 rounds), pure ASGI, no server:
- a bare ASGI app that reads the body (baseline) vs the same app behind ``InputGuard``;
- bodies: a typical transaction (no hint: passes untouched after one regex search), the same
  with non-ASCII text sent as ``\\u`` escapes (hinted: parsed and walked), a query string.
Baseline in the same run: ``json.loads`` of the same body (what FastAPI pays anyway).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive, Scope, Send

from bench._common import table
from tenantry.kernel.http.input_guard import InputGuard

N = 20_000
ROUNDS = 7
PLAIN = json.dumps(
    {
        "description": "invoice 2026-0042 paid",
        "metadata": {"customer": "c-1234", "lines": [1, 2, 3]},
        "entries": [
            {
                "account_id": "5b0e6a0e-8f3c-4c41-a1f4-4c4f8b9b1a01",
                "direction": "debit",
                "amount": 12500,
            },
            {
                "account_id": "0c7d1b9e-2d6b-4a3e-9b8e-6c2a5f0e9d02",
                "direction": "credit",
                "amount": 12500,
            },
        ],
    }
).encode()
ESCAPED = PLAIN.replace(b"paid", b"pay\\u00e9 \\u2603")


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _scope(query: bytes = b"") -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/ledger/transactions",
        "query_string": query,
        "headers": [(b"content-type", b"application/json")],
        "state": {},
    }


def _call(
    app: Callable[[Scope, Receive, Send], Awaitable[None]], body: bytes, query: bytes = b""
) -> Callable[[], Awaitable[None]]:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(_message: Message) -> None:
        return None

    async def once() -> None:
        await app(_scope(query), receive, send)

    return once


async def _per_call_us(fn: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(N):
            await fn()
        times.append((time.perf_counter() - start) / N * 1e6)
    return statistics.median(times)


def _sync_us(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(N):
            fn()
        times.append((time.perf_counter() - start) / N * 1e6)
    return statistics.median(times)


async def main() -> None:
    guarded = InputGuard(_app)
    query = b"filter=%7B%7D&as_of=2026-01-01T00:00:00Z&limit=50"
    rows: list[list[object]] = []
    for name, body, q in (
        ("transaction body, no hint", PLAIN, b""),
        ("body with \\u escapes (walked)", ESCAPED, b""),
        ("query string, no hint", b"", query),
    ):
        bare = await _per_call_us(_call(_app, body, q))
        ours = await _per_call_us(_call(guarded, body, q))
        loads = _sync_us(lambda b=body: json.loads(b)) if body else 0.0
        rows.append([name, f"{bare:.2f}", f"{ours:.2f}", f"{ours - bare:.2f}", f"{loads:.2f}"])
    print(
        table(
            "input guard, per request (us, median of 7 rounds)",
            [
                "request",
                "bare ASGI app µs",
                "behind InputGuard µs",
                "guard adds µs",
                "json.loads µs",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
