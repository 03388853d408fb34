"""NotificationService and NotificationHandlers on the in-memory fakes
(notifications_fakes.py): registering webhook endpoints (audited, without the
secret; refusals leave nothing), direct notices (the ``Notifier`` port) and the event
handlers' deliveries, without PostgreSQL, SMTP or HTTP. tests/messaging/test_notifications.py
and test_webhook_targets.py run the same on PostgreSQL with real receivers."""

from __future__ import annotations

import uuid

import pytest

from notifications_fakes import Fakes, fake_notifications
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry.kernel.tenancy.contracts import TenantOnboarded
from tenantry_identity.contracts import ApiClientCreated, UserAddedToTenant
from tenantry_notifications.application.services import (
    NOTICE_EVENT,
    WEBHOOK_CREATE,
)
from tenantry_notifications.domain.endpoints import UnknownEvents
from tenantry_notifications.domain.targets import TargetRefused

URL = "https://hooks.example.test/in"
CLIENTS = ApiClientCreated.message_name
MEMBERS = UserAddedToTenant.message_name


def ctx(name: str) -> MessageContext:
    return MessageContext(uuid.uuid4(), name, None, "notifications")


@pytest.fixture
def f() -> Fakes:
    return fake_notifications()


async def test_registering_an_endpoint_audits_it_without_its_secret(f: Fakes) -> None:
    created = await f.service.register_webhook(URL, [NOTICE_EVENT, CLIENTS, NOTICE_EVENT])
    assert created["url"] == URL
    assert created["events"] == sorted({NOTICE_EVENT, CLIENTS})  # sorted, without repeats
    assert created["secret"].startswith("whsec_")
    (stored,) = f.units.state.endpoints
    assert (str(stored["id"]), stored["secret"]) == (created["id"], created["secret"])
    assert f.units.audits == [
        {
            "action": WEBHOOK_CREATE,
            "resource": f"webhook:{created['id']}",
            "before": None,
            "after": {"url": URL, "events": created["events"]},
            "outcome": "success",
            "details": None,
        }
    ]
    assert created["secret"] not in repr(f.units.audits)
    assert f.units.opened == [False]
    assert f.targets.vetted == [URL]


async def test_each_endpoint_gets_its_own_secret(f: Fakes) -> None:
    a = await f.service.register_webhook(URL, [CLIENTS])
    b = await f.service.register_webhook(URL, [CLIENTS])
    assert a["id"] != b["id"]
    assert a["secret"] != b["secret"]
    assert [r["resource"] for r in f.units.audits] == [f"webhook:{a['id']}", f"webhook:{b['id']}"]


async def test_a_refused_target_opens_no_unit_of_work(f: Fakes) -> None:
    f.targets.refused.add(URL)
    with pytest.raises(TargetRefused, match="loopback"):
        await f.service.register_webhook(URL, [CLIENTS])
    assert (f.units.opened, f.units.state.endpoints, f.units.audits) == ([], [], [])


async def test_unknown_events_are_named_and_nothing_is_written(f: Fakes) -> None:
    with pytest.raises(UnknownEvents) as refused:
        await f.service.register_webhook(URL, [CLIENTS, "ledger.Nothing.v1", "a.B.v1"])
    assert refused.value.events == ["a.B.v1", "ledger.Nothing.v1"]
    assert str(refused.value) == "unknown events ['a.B.v1', 'ledger.Nothing.v1']"
    assert (f.units.opened, f.units.state.endpoints, f.units.audits) == ([], [], [])


async def test_listing_endpoints_reads_in_a_read_only_unit_of_work(f: Fakes) -> None:
    created = await f.service.register_webhook(URL, [CLIENTS])
    items = await f.service.endpoints()
    assert items == [{"id": created["id"], "url": URL, "events": [CLIENTS], "active": True}]
    assert f.units.opened == [False, True]


async def test_email_notice_is_sent_without_a_unit_of_work(f: Fakes) -> None:
    await f.service.notify("email", "ops@x.test", "Export succeeded", {"export_id": "e1"})
    ((to, subject, body),) = f.mailer.sent
    assert (to, subject) == ("ops@x.test", "Export succeeded")
    assert "export_id: e1" in body
    assert f.units.opened == []


async def test_webhook_notice_goes_signed_to_a_registered_endpoint_and_is_logged(
    f: Fakes,
) -> None:
    created = await f.service.register_webhook(URL, [NOTICE_EVENT])
    await f.service.notify("webhook", URL, "Export failed", {"export_id": "e2"})
    (call,) = f.webhooks.calls
    assert (call["url"], call["secret"], call["event"]) == (URL, created["secret"], NOTICE_EVENT)
    assert call["body"] == {
        "id": call["message_id"],
        "event": NOTICE_EVENT,
        "subject": "Export failed",
        "data": {"export_id": "e2"},
    }
    assert f.units.state.log == [(call["message_id"], "webhook", URL, "200")]


async def test_webhook_notice_to_an_unregistered_url_is_refused(f: Fakes) -> None:
    with pytest.raises(ValueError, match="not a registered"):
        await f.service.notify("webhook", URL, "x", {})
    with pytest.raises(ValueError, match="unknown notification channel 'sms'"):
        await f.service.notify("sms", URL, "x", {})
    assert f.webhooks.calls == []
    assert f.units.rollbacks == 1


async def test_refusal_is_asked_in_the_callers_unit_of_work(f: Fakes) -> None:
    await f.service.register_webhook(URL, [NOTICE_EVENT])
    async with f.units(readonly=True) as uow:
        assert await f.service.refusal(uow, "webhook", URL) is None
        assert await f.service.refusal(uow, "email", "a@b.test") is None
        other = await f.service.refusal(uow, "webhook", "https://other.test/")
        assert other is not None
        assert "not one of this tenant's registered" in other
        assert await f.service.refusal(uow, "sms", "1") == "unknown notification channel 'sms'"


async def test_event_handlers_deliver_to_subscribed_endpoints_and_log(f: Fakes) -> None:
    clients = await f.service.register_webhook(URL, [CLIENTS])
    await f.service.register_webhook("https://members.test/", [MEMBERS])
    event = ApiClientCreated(client_id="c1", name="ci", roles=["admin"])
    c = ctx(CLIENTS)
    async with f.units() as uow:  # the dispatcher's unit of work
        await f.handlers.on_api_client_created(uow, event, c)
    (call,) = f.webhooks.calls
    assert (call["url"], call["secret"], call["message_id"]) == (
        URL,
        clients["secret"],
        str(c.message_id),
    )
    assert call["body"] == {
        "id": str(c.message_id),
        "event": CLIENTS,
        "data": event.model_dump(mode="json"),
    }
    assert f.units.state.log == [(str(c.message_id), "webhook", URL, "200")]


async def test_the_onboarding_admin_gets_the_welcome_email_only(f: Fakes) -> None:
    added = UserAddedToTenant(user_id=uuid.uuid4(), email="a@t.test", roles=[], onboarding=True)
    welcome = TenantOnboarded(
        tenant_id=uuid.uuid4(), slug="t", name="T Co", isolation="shared", admin_email="a@t.test"
    )
    async with f.units() as uow:
        await f.handlers.on_user_added(uow, added, ctx(MEMBERS))
        await f.handlers.on_tenant_onboarded(uow, welcome, ctx(TenantOnboarded.message_name))
    assert [(to, subject) for to, subject, _ in f.mailer.sent] == [
        ("a@t.test", "Welcome to Tenantry, T Co")
    ]
    member = UserAddedToTenant(user_id=uuid.uuid4(), email="m@t.test", roles=["admin"])
    async with f.units() as uow:
        await f.handlers.on_user_added(uow, member, ctx(MEMBERS))
    assert f.mailer.sent[-1][:2] == ("m@t.test", "You were added to a Tenantry workspace")
    assert [row[1:3] for row in f.units.state.log] == [
        ("email", "a@t.test"),
        ("email", "m@t.test"),
    ]
