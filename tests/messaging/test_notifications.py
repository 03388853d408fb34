"""Notifications: welcome email over SMTP (a real aiosmtpd server), signed webhooks with
retries and a circuit breaker (a real local HTTP server); in-process and over the bus."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller

from tenantry.capabilities.audit.log import AuditLog
from tenantry.capabilities.export.notify import Notifier
from tenantry.kernel.config import load_settings
from tenantry.kernel.db.privileged import platform_unit_of_work_as, tenant_unit_of_work
from tenantry.kernel.modules import discover
from tenantry.kernel.observability.errors import Notification
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.model import IsolationMode
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry_notifications.application.services import NotificationService
from tenantry_notifications.contracts import MESSAGE_ID_HEADER, SIGNATURE_HEADER
from tenantry_notifications.domain.breaker import CircuitBreaker, CircuitOpen
from tenantry_notifications.domain.signing import verify
from tenantry_notifications.infrastructure.error_mail import ErrorMailNotifier
from tenantry_reporting.testing import posted
from tests.conftest import RUN, MakeTenant
from tests.messaging.conftest import eventually


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def service_of(platform: Platform) -> Any:
    """This platform's notifications service (the module object is set up again by every
    Platform built in the run, so always go through the platform)."""
    svc = platform.use(Notifier)
    assert isinstance(svc, NotificationService)
    return svc


@pytest.fixture
def smtp(probed: Platform) -> Iterator[Inbox]:
    inbox = Inbox()
    with socket.socket() as probe_sock:
        probe_sock.bind(("127.0.0.1", 0))
        port = probe_sock.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailer = service_of(probed).mailer
    saved = (mailer.host, mailer.port)
    mailer.host = "127.0.0.1"
    mailer.port = port
    try:
        yield inbox
    finally:
        mailer.host, mailer.port = saved
        controller.stop()


@dataclass
class HookServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # next responses; then 200


@pytest.fixture
async def hooks() -> AsyncIterator[HookServer]:
    server_box: list[HookServer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        srv = server_box[0]
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {
            k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        srv.requests.append({"headers": headers, "body": body})
        status = srv.statuses.pop(0) if srv.statuses else 200
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server_box.append(HookServer(f"http://127.0.0.1:{port}/hook"))
    try:
        yield server_box[0]
    finally:
        server.close()
        await server.wait_closed()


async def test_welcome_email_after_onboarding(
    probed: Platform, smtp: Inbox, transport: str
) -> None:
    slug = f"nt{RUN}-{transport[:3]}-{uuid.uuid4().hex[:4]}"
    email = f"owner@{slug}.test"
    await probed.provisioner.create(
        ProvisionRequest(slug, "Welcome Co", IsolationMode.SHARED, options={"admin_email": email})
    )

    async def arrived() -> bool:
        return any(m["To"] == email for m in smtp.messages)

    await eventually(arrived)
    (mail,) = [m for m in smtp.messages if m["To"] == email]
    assert "Welcome Co" in mail["Subject"]
    assert slug in mail.get_payload()


async def test_signed_webhook_retried_until_accepted(
    probed: Platform,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    hooks: HookServer,
    transport: str,
) -> None:
    t = await make_tenant()
    r = await client.post(
        "/api/v1/notifications/webhooks",
        headers=t.auth,
        json={"url": hooks.url, "events": ["ledger.TransactionPosted.v1"]},
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    hooks.statuses = [500, 503]  # two failures, then 200
    with tenant_scope(t.tenant):
        async with probed.db.unit_of_work() as uow:
            mid = await probed.dispatcher.publish(uow, posted(datetime(2026, 7, 1, tzinfo=UTC)))

    async def accepted() -> bool:
        return len(hooks.requests) >= 3

    await eventually(accepted)
    assert len({req["headers"][MESSAGE_ID_HEADER.lower()] for req in hooks.requests}) == 1
    last = hooks.requests[-1]
    assert verify(secret, last["headers"][SIGNATURE_HEADER.lower()], last["body"], int(time.time()))
    assert not verify(
        "wrong", last["headers"][SIGNATURE_HEADER.lower()], last["body"], int(time.time())
    )

    async def logged() -> bool:
        with tenant_scope(t.tenant):
            async with probed.db.unit_of_work() as uow:
                return bool(
                    await uow.fetchval(
                        "SELECT count(*) FROM notification_log WHERE message_id = $1"
                        " AND channel = 'webhook' AND status = '200'",
                        mid,
                    )
                )

    await eventually(logged)


async def test_circuit_breaker_stops_calling_a_failing_endpoint(
    probed: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant, hooks: HookServer
) -> None:
    wh = service_of(probed).webhooks
    saved = (wh.attempts, wh.breaker)
    wh.attempts = 2
    wh.breaker = CircuitBreaker(2, 60.0, time.monotonic)
    try:
        t = await make_tenant()
        r = await client.post(
            "/api/v1/notifications/webhooks",
            headers=t.auth,
            json={"url": hooks.url, "events": ["ledger.TransactionPosted.v1"]},
        )
        assert r.status_code == 201
        hooks.statuses = [503] * 100
        with tenant_scope(t.tenant):
            async with probed.db.unit_of_work() as uow:
                await probed.dispatcher.publish(uow, posted(datetime(2026, 7, 2, tzinfo=UTC)))

        async def opened() -> bool:
            return bool(wh.breaker.is_open(hooks.url))

        await eventually(opened)
        calls = len(hooks.requests)
        await asyncio.sleep(1.0)  # the relay retries; the open breaker keeps it off the wire
        assert len(hooks.requests) == calls == 2
        with pytest.raises(CircuitOpen):
            wh.breaker.check(hooks.url)
    finally:
        wh.attempts, wh.breaker = saved


def test_breaker_half_opens_after_cooldown() -> None:
    now = [0.0]
    b = CircuitBreaker(2, 10.0, lambda: now[0])
    b.failure("u")
    b.check("u")
    b.failure("u")
    with pytest.raises(CircuitOpen):
        b.check("u")
    now[0] = 11.0
    b.check("u")  # the trial call
    with pytest.raises(CircuitOpen):
        b.check("u")  # others wait while the trial runs
    b.success("u")
    b.check("u")


async def test_direct_notices_by_email_and_signed_webhook(
    probed: Platform,
    smtp: Inbox,
    hooks: HookServer,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
) -> None:
    """Exports notify through this service (not the log fallback): email, or a webhook to one
    of the tenant's own registered endpoints, signed with its secret."""
    from tenantry.capabilities.export.notify import Notifier, resolve_notifier

    svc = service_of(probed)
    assert isinstance(svc, Notifier)
    assert resolve_notifier(probed.capabilities) is svc
    t = await make_tenant()
    body = {"export_id": "e1", "status": "succeeded", "error": None}
    await svc.notify("email", "ops@notice.test", "Export succeeded", body)
    mail = smtp.messages[-1]
    assert mail["To"] == "ops@notice.test"
    assert "export_id: e1" in mail.get_payload()
    r = await client.post(
        "/api/v1/notifications/webhooks",
        headers=t.auth,
        json={"url": hooks.url, "events": ["platform.Notice.v1"]},
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    with tenant_scope(t.tenant):
        await svc.notify("webhook", hooks.url, "Export failed", {"export_id": "e2"})
        with pytest.raises(ValueError, match="not a registered"):
            await svc.notify("webhook", "http://127.0.0.1:9/elsewhere", "x", {})
    last = hooks.requests[-1]
    assert verify(secret, last["headers"][SIGNATURE_HEADER.lower()], last["body"], int(time.time()))
    other = await make_tenant()
    with tenant_scope(other.tenant), pytest.raises(ValueError, match="not a registered"):
        await svc.notify("webhook", hooks.url, "x", {})  # A's endpoint is invisible to B


async def test_identity_events_reach_notifications(
    probed: Platform,
    client: httpx.AsyncClient,
    make_tenant: MakeTenant,
    smtp: Inbox,
    hooks: HookServer,
    transport: str,
) -> None:
    """Identity publishes UserAddedToTenant and ApiClientCreated through the outbox in the
    membership's / client's own transaction; notifications (over the bus, or in-process)
    emails the new member and calls the tenant's webhooks. The onboarding admin gets only
    the welcome email."""
    t = await make_tenant()
    r = await client.post(
        "/api/v1/notifications/webhooks",
        headers=t.auth,
        json={
            "url": hooks.url,
            "events": ["identity.UserAddedToTenant.v1", "identity.ApiClientCreated.v1"],
        },
    )
    assert r.status_code == 201, r.text
    email = f"new-{transport}@{t.tenant.slug}.test"
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": email, "password": "a-long-password-1", "roles": ["admin"]},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/identity/clients", headers=t.auth, json={"name": "ci", "roles": ["admin"]}
    )
    assert r.status_code == 201, r.text
    client_id, secret = r.json()["client_id"], r.json()["client_secret"]

    async def mailed() -> bool:
        return any(m["To"] == email for m in smtp.messages)

    wanted = {"identity.UserAddedToTenant.v1", "identity.ApiClientCreated.v1"}

    async def hooked() -> bool:  # webhooks are at-least-once: wait for both kinds, of this
        # run (the receiver may hold events of the other parametrization)
        bodies = [orjson.loads(req["body"]) for req in hooks.requests]
        ours = {
            b["event"]
            for b in bodies
            if b["event"] != "identity.UserAddedToTenant.v1" or b["data"].get("email") == email
        }
        return wanted <= ours

    await eventually(mailed)
    await eventually(hooked)
    (mail,) = [m for m in smtp.messages if m["To"] == email]
    assert "added" in mail["Subject"]
    bodies = [orjson.loads(req["body"]) for req in hooks.requests]
    # (At-least-once: a redelivered webhook may repeat, with the same message id.)
    added, *_ = [
        b["data"]
        for b in bodies
        if b["event"] == "identity.UserAddedToTenant.v1" and b["data"]["email"] == email
    ]
    assert added["roles"] == ["admin"]
    assert added["onboarding"] is False
    created, *_ = [
        req["body"]
        for req, b in zip(hooks.requests, bodies, strict=True)
        if b["event"] == "identity.ApiClientCreated.v1"
    ]
    assert orjson.loads(created)["data"]["client_id"] == client_id
    assert secret.encode() not in created  # an event never carries the secret
    admin = t.admin_email
    assert not [m for m in smtp.messages if m["To"] == admin and "added" in m["Subject"]]
    # Both events sit in the tenant's own outbox with its tenant id (published there).
    with tenant_scope(t.tenant):
        async with probed.db.unit_of_work() as uow:
            names = {
                r["name"]
                for r in await uow.fetch(
                    "SELECT name FROM outbox WHERE name LIKE 'identity.%' AND tenant_id = $1",
                    t.tenant.id,
                )
            }
    assert names == {"identity.UserAddedToTenant.v1", "identity.ApiClientCreated.v1"}


async def test_a_rolled_back_membership_publishes_nothing(
    probed: Platform, make_tenant: MakeTenant
) -> None:
    """The event commits with the membership or not at all (schema tenant: the outbox of
    its schema, written from the platform transaction on the main database)."""
    from tenantry_identity.contracts import UserAddedToTenant

    t = await make_tenant("schema")

    class Boom(Exception):
        pass

    async def publish_then_fail() -> None:
        async with platform_unit_of_work_as(probed.db, t.tenant) as uow:
            await probed.dispatcher.publish(
                uow, UserAddedToTenant(user_id=uuid.uuid4(), email="x@y.test", roles=[])
            )
            raise Boom

    with pytest.raises(Boom):
        await publish_then_fail()
    async with platform_unit_of_work_as(probed.db, t.tenant) as uow:
        mid = await probed.dispatcher.publish(
            uow, UserAddedToTenant(user_id=uuid.uuid4(), email="z@y.test", roles=[])
        )
    async with tenant_unit_of_work(probed.db, t.tenant) as uow:
        rows = await uow.fetch(
            "SELECT message_id FROM outbox WHERE name = 'identity.UserAddedToTenant.v1'"
            " AND payload->>'email' IN ('x@y.test', 'z@y.test')"
        )
    assert [r["message_id"] for r in rows] == [mid]


async def test_membership_event_of_a_database_tenant_lands_in_its_database(
    probed: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """A database-mode tenant's outbox is in its own database, which the platform
    transaction (main database) cannot join: the event is written there in a transaction of
    its own, and delivered from there."""
    t = await make_tenant("database")
    assert t.tenant.database is not None
    email = f"db-member@{t.tenant.slug}.test"
    r = await client.post(
        "/api/v1/identity/users",
        headers=t.auth,
        json={"email": email, "password": "a-long-password-1", "roles": []},
    )
    assert r.status_code == 201, r.text
    async with tenant_unit_of_work(probed.db, t.tenant) as uow:
        rows = await uow.fetch(
            "SELECT tenant_id, payload FROM outbox WHERE name = 'identity.UserAddedToTenant.v1'"
        )
    assert [r["payload"]["email"] for r in rows if r["payload"]["email"] == email] == [email]
    assert {r["tenant_id"] for r in rows} == {t.tenant.id}


async def test_error_notifications_reach_operators_by_email(smtp: Inbox, probed: Platform) -> None:
    recipients = ["ops@example.test", "sre@example.test"]
    notifier = ErrorMailNotifier(service_of(probed).mailer, recipients)
    await notifier.notify(
        Notification(7, "fp", "builtins.KeyError", "'tenant'", "production", 10, "threshold")
    )
    await notifier.notify(
        Notification(7, "fp", "builtins.KeyError", "'tenant'", "production", 11, "reopened")
    )
    # The server is the platform's: other tests' mail (welcome, membership) may arrive too.
    mine = [m for m in smtp.messages if m["To"] in recipients]
    assert [m["To"] for m in mine] == [*recipients, *recipients]
    first, reopened = mine[0], mine[2]
    assert first["Subject"] == "[production] builtins.KeyError: 'tenant'"
    assert "happened 10 times" in first.get_payload()
    assert "tenantry errors show 7" in first.get_payload()
    assert "resolved and happened again" in reopened.get_payload()


def test_error_emails_setting_plugs_the_mail_notifier_into_error_tracking(
    probed: Platform,
) -> None:
    settings = load_settings(
        None,
        database=probed.settings.database.model_dump(),
        notifications={"error_emails": ["ops@example.test"]},
    )
    # Fresh module objects: the discovered ones are shared with the running platform.
    built = Platform(settings, [type(m)() for m in discover()], probed.db.admin_url)
    mails = [n for n in built.observability.errors.notifiers if isinstance(n, ErrorMailNotifier)]
    assert [n.recipients for n in mails] == [["ops@example.test"]]
    assert not any(
        isinstance(n, ErrorMailNotifier) for n in probed.observability.errors.notifiers
    )  # not configured: log (and webhook) only


@pytest.mark.parametrize("mode", ["shared", "database"])
async def test_registering_a_webhook_endpoint_is_audited(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform, mode: str
) -> None:
    """One ``notifications.webhook.create`` record per registered endpoint, written with it
    (the service's unit of work), with its URL and events and never its secret; a refused
    registration leaves none. The records join the tenant's chain, which verifies."""
    t = await make_tenant(mode)
    url = f"http://127.0.0.1:9/audited-{uuid.uuid4().hex[:6]}"
    events = ["platform.Notice.v1", "ledger.TransactionPosted.v1", "platform.Notice.v1"]
    r = await client.post(
        "/api/v1/notifications/webhooks", headers=t.auth, json={"url": url, "events": events}
    )
    assert r.status_code == 201, r.text
    created = r.json()
    refused = await client.post(
        "/api/v1/notifications/webhooks",
        headers=t.auth,
        json={"url": url, "events": ["ledger.Nothing.v1"]},
    )
    assert refused.status_code == 422, refused.text
    r = await client.get("/api/v1/audit/events?limit=200", headers=t.auth)
    assert r.status_code == 200, r.text
    assert created["secret"] not in r.text
    records = [e for e in r.json()["items"] if e["action"].startswith("notifications.")]
    assert [(e["action"], e["resource"], e["outcome"]) for e in records] == [
        ("notifications.webhook.create", f"webhook:{created['id']}", "success")
    ]
    (record,) = records
    assert record["after"] == {"url": url, "events": sorted(set(events))}
    assert record["before"] is None
    assert record["actor"] is not None
    count, problems = await platform.use(AuditLog).verify(t.tenant)
    assert problems == []
    assert count >= 1
