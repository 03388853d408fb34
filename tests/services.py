"""The services the tests use beside PostgreSQL, found the same way everywhere.

Redis comes from ``TENANTRY_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/15). When it is
unreachable a test that needs it skips, except with ``CI=true``, where it fails: in CI every
service must be there.
"""

from __future__ import annotations

import os

import pytest
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("TENANTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def require_redis() -> None:
    """Return if Redis answers; else skip the test, or fail it in CI."""
    probe = aioredis.Redis.from_url(REDIS_URL)
    try:
        await probe.ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required in CI ({REDIS_URL}): {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        await probe.aclose()
