"""Rate-limit backends: GCRA (a token bucket kept as one timestamp per key).

A key may take ``burst`` requests at once and ``rate`` per second after that. The state is
the "theoretical arrival time" (TAT): a request is allowed if, after adding one emission
interval ``1/rate``, TAT is at most ``burst`` intervals ahead of now. In-process: a dict
(one process). Redis: one Lua script, atomic, using the Redis clock (many processes).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int  # the burst: requests allowed at once
    remaining: int
    reset_s: float  # until the bucket is full again
    retry_after_s: float  # until one request is allowed (0 when allowed)


class Limiter(Protocol):
    async def hit(self, key: str, rate: float, burst: int) -> Verdict: ...

    async def close(self) -> None: ...


def gcra(tat: float, now: float, rate: float, burst: int) -> tuple[Verdict, float]:
    """(verdict, new TAT) for one request at ``now``; pure."""
    interval = 1.0 / rate
    tolerance = burst * interval
    tat = max(tat, now)
    new_tat = tat + interval
    ahead = new_tat - now
    if ahead > tolerance + 1e-9:
        retry = ahead - tolerance
        remaining = 0
        return Verdict(False, burst, remaining, tat - now, retry), tat
    remaining = math.floor((tolerance - ahead) / interval + 1e-9)
    return Verdict(True, burst, remaining, ahead, 0.0), new_tat


class MemoryLimiter:
    """One process. Keys expire lazily (a sweep when the table grows)."""

    def __init__(self, clock: Any = time.monotonic, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._tat: dict[str, float] = {}

    async def hit(self, key: str, rate: float, burst: int) -> Verdict:
        now = self.clock()
        verdict, tat = gcra(self._tat.get(key, now), now, rate, burst)
        self._tat[key] = tat
        if len(self._tat) > self.max_keys:
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return verdict

    async def close(self) -> None:
        self._tat.clear()


# KEYS[1]: key; ARGV: rate, burst. Returns {allowed, remaining, reset_ms, retry_ms}.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local interval = 1000 / rate
local tolerance = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > tolerance + 0.000001 then
  return {0, 0, math.ceil(tat - now), math.ceil(ahead - tolerance)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(ahead) + 1000)
return {1, math.floor((tolerance - ahead) / interval + 0.000001), math.ceil(ahead), 0}
"""


class RedisLimiter:
    """Many processes share the buckets in Redis (one round trip per request)."""

    def __init__(self, url: str, prefix: str = "tenantry:rl:") -> None:
        import redis.asyncio as redis

        self.client: Any = redis.Redis.from_url(url)
        self.prefix = prefix
        self.script = self.client.register_script(GCRA_LUA)

    async def hit(self, key: str, rate: float, burst: int) -> Verdict:
        allowed, remaining, reset_ms, retry_ms = await self.script(
            keys=[self.prefix + key], args=[rate, burst]
        )
        return Verdict(bool(allowed), burst, int(remaining), reset_ms / 1000, retry_ms / 1000)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()
