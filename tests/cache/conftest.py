"""Cache fixtures: the platform's PostgreSQL cache and a Redis-backed one (real Redis).

Redis comes from ``TENANTRY_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/15). When it is
unreachable the Redis tests skip, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tenantry.capabilities.cache.cache import Cache
from tenantry.capabilities.cache.redis_backend import RedisBackend
from tenantry.kernel.platform import Platform

REDIS_URL = os.environ.get("TENANTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def pg_cache(platform: Platform) -> Cache:
    cache: Cache = platform.use(Cache)
    return cache


@pytest.fixture
async def redis_cache(platform: Platform) -> AsyncIterator[Cache]:
    probe = aioredis.Redis.from_url(REDIS_URL)
    try:
        await probe.ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required in CI ({REDIS_URL}): {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        await probe.aclose()
    cache = Cache(RedisBackend(REDIS_URL, namespace="tenantry-test"), platform.db)
    yield cache
    await cache.close()
