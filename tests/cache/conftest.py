"""Cache fixtures: the platform's PostgreSQL cache and a Redis-backed one (real Redis).

Redis comes from ``TENANTRY_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/15). When it is
unreachable the Redis tests skip, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tenantry.capabilities.cache.cache import Cache
from tenantry.capabilities.cache.redis_backend import RedisBackend
from tenantry.kernel.platform import Platform
from tests.services import REDIS_URL, require_redis


@pytest.fixture
def pg_cache(platform: Platform) -> Cache:
    cache: Cache = platform.use(Cache)
    return cache


@pytest.fixture
async def redis_cache(platform: Platform) -> AsyncIterator[Cache]:
    await require_redis()
    cache = Cache(RedisBackend(REDIS_URL, namespace="tenantry-test"), platform.db)
    yield cache
    await cache.close()
