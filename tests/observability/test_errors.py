"""Error tracking: fingerprints, grouping, occurrences, notifications, reopening, API."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.observability.errors import Notification, WebhookNotifier, snapshot
from tenantry.kernel.platform import Platform
from tests.conftest import MakeTenant
from tests.observability.conftest import BoomError


async def groups_of(platform: Platform, etype: str) -> list[dict[str, Any]]:
    await platform.observability.errors.flush()
    return [
        g for g in await platform.observability.errors.list(limit=500) if g["error_type"] == etype
    ]


async def test_same_error_from_two_requests_is_one_group_two_occurrences(
    platform: Platform, obs_client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r1 = await obs_client.get("/test/boom/1", headers=t.auth)
    r2 = await obs_client.get("/test/boom/2", headers=t.auth)
    other = await obs_client.get("/test/other", headers=t.auth)
    assert r1.status_code == r2.status_code == other.status_code == 500
    assert "Traceback" not in r1.text
    assert r1.headers["x-request-id"] == r1.json()["request_id"]
    boom = await groups_of(platform, "tests.observability.conftest.BoomError")
    assert len(boom) == 1
    assert boom[0]["occurrences"] == 2
    others = await groups_of(platform, "tests.observability.conftest.OtherError")
    assert len(others) == 1
    assert others[0]["fingerprint"] != boom[0]["fingerprint"]
    shown = await platform.observability.errors.show(boom[0]["id"])
    assert shown is not None
    recent = shown["recent"]
    assert len(recent) == 2
    assert {o["request_id"] for o in recent} == {r1.json()["request_id"], r2.json()["request_id"]}
    assert {o["tenant_id"] for o in recent} == {str(t.tenant.id)}
    assert recent[0]["principal"]
    assert recent[0]["request"]["route"] == "/test/boom/{n}"
    assert recent[0]["trace_id"]
    assert len(recent[0]["trace_id"]) == 32
    assert any(f["function"] == "boom" for f in recent[0]["stack"])


async def test_error_in_an_aborted_transaction_is_still_recorded(
    platform: Platform, obs_client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r = await obs_client.get("/test/aborted", headers=t.auth)
    assert r.status_code == 500
    groups = await groups_of(platform, "asyncpg.exceptions.DivisionByZeroError")
    assert groups
    assert groups[0]["occurrences"] >= 1


def test_fingerprint_ignores_message_and_line_numbers() -> None:
    def fail(msg: str) -> None:
        raise BoomError(msg)

    events = []
    for msg in ("a 1", "b 2"):
        try:
            fail(msg)
        except BoomError as exc:
            events.append(snapshot(exc))
    assert events[0].fingerprint == events[1].fingerprint
    try:
        raise KeyError("x")
    except KeyError as exc:
        other = snapshot(exc)
    assert other.fingerprint != events[0].fingerprint


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Notification] = []

    async def notify(self, n: Notification) -> None:
        self.seen.append(n)


class _Hook(http.server.BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        n = int(self.headers["Content-Length"])
        _Hook.bodies.append(orjson.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


async def test_notifications_on_thresholds_and_when_a_resolved_error_recurs(
    platform: Platform, webhook: str
) -> None:
    tracker = platform.observability.errors
    rec = Recorder()
    hook = WebhookNotifier(webhook)
    tracker.add_notifier(rec)
    tracker.add_notifier(hook)
    _Hook.bodies.clear()

    class ThresholdError(Exception):
        pass

    try:
        results = []
        for i in range(12):
            try:
                raise ThresholdError(f"n={i}")
            except ThresholdError as exc:
                results.append(await tracker.capture(exc, {"job": "test"}))
        mine = [n for n in rec.seen if n.error_type.endswith("ThresholdError")]
        assert [n.occurrences for n in mine] == [1, 10]
        assert [r.occurrences for r in results] == list(range(1, 13))
        assert [b["occurrences"] for b in _Hook.bodies] == [1, 10]
        group_id = results[0].group_id
        assert await tracker.set_status(group_id, "resolved")
        try:
            raise ThresholdError("again")
        except ThresholdError as exc:
            again = await tracker.capture(exc)
        assert again.reopened
        assert again.notified
        assert rec.seen[-1].reason == "reopened"
        shown = await tracker.show(group_id, 0)
        assert shown is not None
        assert shown["status"] == "unresolved"
        # An ignored error stays ignored and does not notify below the next threshold.
        await tracker.set_status(group_id, "ignored")
        try:
            raise ThresholdError("quiet")
        except ThresholdError as exc:
            quiet = await tracker.capture(exc)
        assert not quiet.reopened
        assert not quiet.notified
    finally:
        tracker.notifiers.remove(rec)
        tracker.notifiers.remove(hook)


async def test_capture_never_raises_even_when_the_database_write_fails(
    platform: Platform,
) -> None:
    tracker = platform.observability.errors
    # PostgreSQL text cannot hold NUL: the write really fails, the caller never sees it.
    task = tracker.capture_exception(ValueError("bad \x00 byte"), {"tenant_id": "not-a-uuid"})
    assert task is not None
    assert (await asyncio.wait_for(task, 10)) is None
    with pytest.raises(asyncpg.exceptions.CharacterNotInRepertoireError):
        await tracker.capture(ValueError("bad \x00 byte"))


async def test_platform_errors_api_is_for_platform_admins(
    platform: Platform,
    obs_client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    operator_auth: dict[str, str],
) -> None:
    t = await make_tenant()
    await obs_client.get("/test/boom/7", headers=t.auth)
    await platform.observability.errors.flush()
    assert (await obs_client.get("/api/v1/platform/errors", headers=t.auth)).status_code == 403
    assert (await obs_client.get("/api/v1/platform/errors")).status_code == 401
    r = await obs_client.get("/api/v1/platform/errors", headers=operator_auth)
    assert r.status_code == 200, r.text
    boom = [g for g in r.json()["items"] if g["error_type"].endswith("BoomError")]
    assert boom
    gid = boom[0]["id"]
    r = await obs_client.get(f"/api/v1/platform/errors/{gid}", headers=operator_auth)
    assert r.status_code == 200
    assert r.json()["recent"]
    r = await obs_client.patch(
        f"/api/v1/platform/errors/{gid}", headers=operator_auth, json={"status": "resolved"}
    )
    assert r.status_code == 200
    assert r.json()["status"] == "resolved"
    r = await obs_client.get("/api/v1/platform/errors/999999999", headers=operator_auth)
    assert r.status_code == 404
    await obs_client.get("/test/boom/8", headers=t.auth)
    await platform.observability.errors.flush()
    r = await obs_client.get(f"/api/v1/platform/errors/{gid}", headers=operator_auth)
    assert r.json()["status"] == "unresolved"  # reopened


async def test_partition_maintenance(platform: Platform) -> None:
    async with admin_connection(platform.db) as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS tenantry.error_occurrences_p200001 PARTITION OF "
            "tenantry.error_occurrences FOR VALUES FROM ('2000-01-01') TO ('2000-02-01')"
        )
    out = await platform.observability.maintenance()
    assert out["error_partitions_dropped"] >= 1
    async with admin_connection(platform.db) as conn:
        names = {
            r[0]
            for r in await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'tenantry.error_occurrences'::regclass"
            )
        }
        months = await conn.fetch(
            "SELECT to_char(date_trunc('month', now()) + make_interval(months => g), 'YYYYMM')"
            " FROM generate_series(0, 3) g"
        )
        days = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tenantry.otel_spans'::regclass"
        )
    assert "error_occurrences_p200001" not in names
    for (m,) in months:
        assert f"error_occurrences_p{m}" in names
    assert "error_occurrences_default" in names
    assert days >= 3
    again = await platform.observability.maintenance()
    assert again["error_partitions_created"] == 0
