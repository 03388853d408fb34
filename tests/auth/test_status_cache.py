"""The principal-status cache: hits do not ask the source, NOTIFY payloads drop the right
entries, the TTL bounds how long an answer is reused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from tenantry.kernel.auth.status import PrincipalStatus
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import Principal
from tenantry.kernel.tenancy.model import IsolationMode, Tenant, TenantStatus


def _tenant() -> Tenant:
    return Tenant(
        uuid.uuid4(), "t", "T", IsolationMode.SHARED, TenantStatus.ACTIVE, "free", "default",
        None, "tenant_shared", datetime.now(UTC),
    )  # fmt: skip


def _principal(tenant: Tenant, subject: str) -> Principal:
    return Principal(subject, tenant.id, "user", frozenset(), frozenset(), "jti")


async def test_cache_hits_invalidation_and_ttl(platform: Platform) -> None:
    calls: list[str] = []
    answers = {"a": True, "b": True}

    async def source(tenant: Tenant, p: Principal) -> bool:
        calls.append(p.subject)
        return answers[p.subject]

    status = PrincipalStatus(platform.db, ttl_s=60)
    status.source = source
    t1, t2 = _tenant(), _tenant()
    a1, b1, a2 = _principal(t1, "a"), _principal(t1, "b"), _principal(t2, "a")
    assert [await status.active(t1, a1) for _ in range(3)] == [True] * 3
    await status.active(t1, b1)
    await status.active(t2, a2)
    assert calls == ["a", "b", "a"]  # one miss per (tenant, subject)

    answers["a"] = False
    status._on_notify(None, 0, "", f"{t1.id}:a")  # one tenant's membership
    assert await status.active(t1, a1) is False
    assert await status.active(t2, a2) is True  # the other tenant's entry is kept
    assert calls == ["a", "b", "a", "a"]

    status._on_notify(None, 0, "", "*:a")  # the login, in every tenant
    assert await status.active(t2, a2) is False
    assert await status.active(t1, b1) is True  # b untouched
    assert calls == ["a", "b", "a", "a", "a"]

    status._on_notify(None, 0, "", "garbage")  # unknown payload: drop everything
    await status.active(t1, b1)
    assert calls[-1] == "b"

    short = PrincipalStatus(platform.db, ttl_s=0.05)
    short.source = source
    await short.active(t1, b1)
    await asyncio.sleep(0.06)
    await short.active(t1, b1)
    assert calls[-2:] == ["b", "b"]


async def test_no_source_means_active(platform: Platform) -> None:
    status = PrincipalStatus(platform.db, ttl_s=60)
    t = _tenant()
    assert await status.active(t, _principal(t, "x")) is True
