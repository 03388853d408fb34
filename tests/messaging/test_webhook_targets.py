"""SSRF: webhooks cannot be aimed at the platform's own network (issue 12, item 3).

Before, ``127.0.0.1``, ``169.254.169.254``, ``localhost``, ``[::1]`` and ``0.0.0.0`` were
accepted as webhook endpoints and called by the server. Now they are refused at
registration (422) and again at delivery, where the name is resolved and the request pinned
to the vetted address (DNS rebinding). The test suite runs with
``notifications.allow_private_targets = true`` (tests/conftest.py: its receivers listen on
127.0.0.1); the cases here switch it off on the platform's guard.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tenantry.capabilities.export.notify import Notifier
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry_notifications.application.services import NotificationService
from tenantry_notifications.domain.targets import TargetRefused, parse_target
from tenantry_notifications.infrastructure.targets import TargetGuard
from tenantry_notifications.infrastructure.webhooks import WebhookRefused
from tests.conftest import MakeTenant

HOOKS = "/api/v1/notifications/webhooks"
NOTICE = ["platform.Notice.v1"]
FORBIDDEN = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8000/api/v1/platform/tenants",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost/hook",
    "http://LOCALHOST./hook",
    "http://app.localhost/hook",
    "http://[::1]/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.0.10/hook",
    "http://100.64.0.1/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/latest",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://2130706433/hook",
    "http://0177.0.0.1/hook",
    "http://0x7f.1/hook",
    "http://127.1/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://224.0.0.1/hook",
    "http://user:pw@93.184.216.34/hook",
    "ftp://93.184.216.34/hook",
    "file:///etc/passwd",
    "http:///hook",
]
ALLOWED = ["https://93.184.216.34/hook", "http://[2606:4700:4700::1111]:8443/x"]


@pytest.mark.parametrize("url", FORBIDDEN)
def test_rules_refuse_internal_targets(url: str) -> None:
    with pytest.raises(TargetRefused):
        parse_target(url)


@pytest.mark.parametrize("url", ALLOWED)
def test_rules_accept_public_targets(url: str) -> None:
    assert parse_target(url).literal is not None


@pytest.fixture
def strict(platform: Platform) -> Iterator[TargetGuard]:
    """The platform's guard as in production: private targets refused."""
    guard: TargetGuard = notifications_of(platform).webhooks.guard
    guard.allow_private = False
    try:
        yield guard
    finally:
        guard.allow_private = True


@dataclass
class Receiver:
    port: int
    requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """An HTTP receiver on every interface (so a request that got through would arrive)."""
    box: list[Receiver] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(h.split(": ", 1) for h in head[1:] if ": " in h)
        length = int(headers.get("content-length", headers.get("Content-Length", "0")))
        await reader.readexactly(length)
        box[0].requests.append({k.lower(): v for k, v in headers.items()})
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", 0)  # noqa: S104
    box.append(Receiver(server.sockets[0].getsockname()[1]))
    try:
        yield box[0]
    finally:
        server.close()
        await server.wait_closed()


async def test_registration_refuses_internal_targets(
    client: httpx.AsyncClient, make_tenant: MakeTenant, strict: TargetGuard
) -> None:
    t = await make_tenant()
    events = ["ledger.TransactionPosted.v1"]
    for url in FORBIDDEN:
        r = await client.post(HOOKS, headers=t.auth, json={"url": url, "events": events})
        assert r.status_code == 422, (url, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == "url"
    # A name that resolves to loopback (this machine's own name) is refused by its address.
    own = f"http://{socket.gethostname()}:9/hook"
    r = await client.post(HOOKS, headers=t.auth, json={"url": own, "events": events})
    assert r.status_code == 422, r.text
    assert (await client.get(HOOKS, headers=t.auth)).json()["items"] == []
    for url in ALLOWED:
        r = await client.post(HOOKS, headers=t.auth, json={"url": url, "events": events})
        assert r.status_code == 201, (url, r.text)


async def test_delivery_resolves_again_and_refuses(
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    platform: Platform,
    receiver: Receiver,
) -> None:
    """Registered while private targets were allowed (or while the name resolved to a
    public address): at delivery the name resolves to loopback, so nothing is sent."""
    t = await make_tenant()
    url = f"http://{socket.gethostname()}:{receiver.port}/hook"
    r = await client.post(
        HOOKS, headers=t.auth, json={"url": url, "events": ["platform.Notice.v1"]}
    )
    assert r.status_code == 201, r.text
    svc = notifications_of(platform)
    with tenant_scope(t.tenant):
        await svc.notify("webhook", url, "allowed", {"n": 1})  # switch on: delivered
        assert len(receiver.requests) == 1
        guard: TargetGuard = svc.webhooks.guard
        guard.allow_private = False
        try:
            with pytest.raises(WebhookRefused, match="loopback"):
                await svc.notify("webhook", url, "refused", {"n": 2})
        finally:
            guard.allow_private = True
    assert len(receiver.requests) == 1  # the refused notice never left


async def test_delivery_is_pinned_to_the_resolved_address(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform, receiver: Receiver
) -> None:
    """The request goes to the address that was checked, with the URL's name as Host."""
    t = await make_tenant()
    url = f"http://localhost:{receiver.port}/hook"
    r = await client.post(
        HOOKS, headers=t.auth, json={"url": url, "events": ["platform.Notice.v1"]}
    )
    assert r.status_code == 201, r.text
    guard: TargetGuard = notifications_of(platform).webhooks.guard
    pinned = await guard.pinned(url)
    assert pinned.url.startswith(("http://127.0.0.1:", "http://[::1]:"))
    assert pinned.headers == {"Host": f"localhost:{receiver.port}"}
    with tenant_scope(t.tenant):
        await notifications_of(platform).notify("webhook", url, "s", {})
    assert receiver.requests[-1]["host"] == f"localhost:{receiver.port}"


async def test_export_notify_webhook_must_be_registered(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    t = await make_tenant()
    unknown = f"https://93.184.216.34/{uuid.uuid4().hex}"
    body = {"source": "ledger.accounts", "format": "csv", "notify": {"webhook": unknown}}
    r = await client.post("/api/v1/exports", headers=t.auth, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "notify.webhook"
    sched = {**body, "cron": "0 3 * * *", "timezone": "UTC"}
    r = await client.post("/api/v1/exports/schedules", headers=t.auth, json=sched)
    assert r.status_code == 422, r.text
    with tenant_scope(t.tenant):
        async with platform.db.unit_of_work(readonly=True) as uow:
            assert await uow.fetchval("SELECT count(*) FROM exports") == 0
    r = await client.post(
        HOOKS, headers=t.auth, json={"url": unknown, "events": ["platform.Notice.v1"]}
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/exports", headers=t.auth, json=body)
    assert r.status_code == 202, r.text


def notifications_of(platform: Platform) -> Any:
    svc = platform.use(Notifier)
    assert isinstance(svc, NotificationService)
    return svc
