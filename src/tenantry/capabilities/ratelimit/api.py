"""The ratelimit module: picks the backend from config, installs the middleware.

[ratelimit]
backend = "memory"                 # or "redis" (many processes)
redis_url = "redis://127.0.0.1:6379/0"
anonymous_rate_per_s = 20          # requests without a tenant, per client IP
anonymous_burst = 40
"""

from __future__ import annotations

from typing import ClassVar

from tenantry.capabilities.ratelimit.backends import Limiter, MemoryLimiter, RedisLimiter
from tenantry.capabilities.ratelimit.middleware import RateLimitMiddleware
from tenantry.kernel.errors import ConfigError
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform


def limiter_from(cfg: dict[str, object]) -> Limiter:
    backend = cfg.get("backend", "memory")
    if backend == "memory":
        return MemoryLimiter()
    if backend == "redis":
        return RedisLimiter(str(cfg.get("redis_url", "redis://127.0.0.1:6379/0")))
    raise ConfigError(f"ratelimit.backend: {backend!r} is not 'memory' or 'redis'")


class RateLimitModule(Module):
    name: ClassVar[str] = "ratelimit"
    depends_on: ClassVar[tuple[str, ...]] = ("entitlements",)

    def setup(self, platform: Platform) -> None:
        cfg = platform.settings.module_settings("ratelimit")
        limiter = limiter_from(cfg)
        platform.services["ratelimit"] = limiter
        platform.add_middleware(
            RateLimitMiddleware,
            limiter=limiter,
            plans=platform.services["entitlements"],
            anonymous_rate_per_s=float(cfg.get("anonymous_rate_per_s", 20)),
            anonymous_burst=int(cfg.get("anonymous_burst", 40)),
        )

    async def shutdown(self, platform: Platform) -> None:
        await platform.services["ratelimit"].close()


module = RateLimitModule()
