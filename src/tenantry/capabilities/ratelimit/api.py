"""The ratelimit module: picks the backend from ``[ratelimit]``, installs the middleware."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from tenantry.capabilities.entitlements.plans import Plans
from tenantry.capabilities.ratelimit.backends import Limiter, MemoryLimiter, RedisLimiter
from tenantry.capabilities.ratelimit.middleware import RateLimitMiddleware
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import MIDDLEWARE_RATE_LIMIT, Registrar


class RateLimitSettings(BaseModel):
    """``[ratelimit]``: where the token buckets live and the limit of anonymous requests."""

    model_config = ConfigDict(extra="forbid")

    #: ``memory`` (one process) or ``redis`` (buckets shared between processes).
    backend: Literal["memory", "redis"] = "memory"
    #: Redis of the ``redis`` backend.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Sustained requests per second without a tenant (the token endpoint), per client IP.
    anonymous_rate_per_s: float = Field(default=20.0, gt=0)
    #: Requests at once without a tenant, per client IP.
    anonymous_burst: int = Field(default=40, ge=1)


def limiter_from(cfg: RateLimitSettings) -> Limiter:
    if cfg.backend == "redis":
        return RedisLimiter(cfg.redis_url)
    return MemoryLimiter()


class RateLimitModule(Module):
    name: ClassVar[str] = "ratelimit"
    capability: ClassVar[bool] = True
    depends_on: ClassVar[tuple[str, ...]] = ("entitlements",)
    settings_model = RateLimitSettings

    def setup(self, registrar: Registrar) -> None:
        cfg = registrar.settings.section(self.name, RateLimitSettings)
        limiter = limiter_from(cfg)
        registrar.provide(Limiter, limiter)
        registrar.add_middleware(
            RateLimitMiddleware,
            order=MIDDLEWARE_RATE_LIMIT,
            limiter=limiter,
            plans=registrar.use(Plans),
            anonymous_rate_per_s=cfg.anonymous_rate_per_s,
            anonymous_burst=cfg.anonymous_burst,
        )

    async def shutdown(self, platform: Platform) -> None:
        await platform.use(Limiter).close()


module = RateLimitModule()
