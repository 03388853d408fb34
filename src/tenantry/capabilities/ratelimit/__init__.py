"""Rate limits per tenant and plan (and per route), in-process or in Redis."""

from tenantry.capabilities.ratelimit.backends import (
    Limiter,
    MemoryLimiter,
    RedisLimiter,
    Verdict,
    gcra,
)

__all__ = ["Limiter", "MemoryLimiter", "RedisLimiter", "Verdict", "gcra"]
