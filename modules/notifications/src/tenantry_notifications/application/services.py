"""Notifications' use cases: the tenant's webhook endpoints (register, list) and direct
notices from capabilities (the ``Notifier`` port: exports call it when an export ends).

Every use case opens its unit of work from the factory the service was given (``async with
self.uow() as uow``), asks the repository to read and write inside it, and records the audit
record of each state change on it (``uow.audit``), which the kernel writes at commit in the
same transaction. It returns domain results or raises domain errors (``TargetRefused``,
``UnknownEvents``); HTTP is the routes' business. The handlers of the events notifications
consumes are in application/handlers.py (they get the dispatcher's unit of work).

External effects (mail, HTTP) cannot join the transaction: they are at-least-once.
"""

from __future__ import annotations

import uuid
from typing import Any, Generic

from tenantry.kernel.db.ports import UnitsOfWork, W
from tenantry_identity.contracts import ApiClientCreated, UserAddedToTenant
from tenantry_ledger.contracts import TransactionPosted
from tenantry_notifications.application.ports import (
    Mailer,
    NotificationRepository,
    TargetCheck,
    WebhookSender,
)
from tenantry_notifications.domain import texts
from tenantry_notifications.domain.endpoints import new_secret, subscribed

#: The event name of direct notices from capabilities (exports' completion or failure).
NOTICE_EVENT = "platform.Notice.v1"
#: The events a webhook endpoint may subscribe to.
WEBHOOK_EVENTS = (
    TransactionPosted.message_name,
    UserAddedToTenant.message_name,
    ApiClientCreated.message_name,
    NOTICE_EVENT,  # direct notices: exports that ended
)
#: The audit action of a registered webhook endpoint.
WEBHOOK_CREATE = "notifications.webhook.create"


class NotificationService(Generic[W]):
    def __init__(
        self,
        uow: UnitsOfWork[W],
        repository: NotificationRepository[W],
        mailer: Mailer,
        webhooks: WebhookSender,
        targets: TargetCheck,
    ) -> None:
        #: Opens a unit of work in the current tenant (kernel: ``Database.unit_of_work``).
        self.uow = uow
        self.repository = repository
        self.mailer = mailer
        self.webhooks = webhooks
        self.targets = targets

    # -- webhook endpoints ------------------------------------------------------------------
    async def register_webhook(self, url: str, events: list[str]) -> dict[str, Any]:
        """Register an endpoint for ``events``; its secret is in the result (and only there:
        never in the audit record). Raises TargetRefused (the URL is, or resolves to, a
        non-public address) or UnknownEvents."""
        await self.targets.vet(url)
        wanted = subscribed(events, WEBHOOK_EVENTS)
        endpoint_id, secret = uuid.uuid4(), new_secret()
        async with self.uow() as uow:
            await self.repository.add_endpoint(uow, endpoint_id, url, secret, wanted)
            uow.audit(
                WEBHOOK_CREATE, f"webhook:{endpoint_id}", after={"url": url, "events": wanted}
            )
        return {"id": str(endpoint_id), "url": url, "events": wanted, "secret": secret}

    async def endpoints(self) -> list[dict[str, Any]]:
        """The tenant's endpoints (without their secrets)."""
        async with self.uow(readonly=True) as uow:
            return await self.repository.endpoints(uow)

    # -- direct notices (the Notifier port) -------------------------------------------------
    async def refusal(self, uow: W, channel: str, target: str) -> str | None:
        """Exports ask before queueing, in their own unit of work: a webhook notice must go
        to one of the tenant's registered, active endpoints (it is signed with that
        endpoint's secret)."""
        if channel == "webhook" and await self.repository.endpoint_by_url(uow, target) is None:
            return f"{target} is not one of this tenant's registered, active webhook endpoints"
        if channel not in ("email", "webhook"):
            return f"unknown notification channel {channel!r}"
        return None

    async def notify(self, channel: str, target: str, subject: str, body: dict[str, Any]) -> None:
        """A direct notice, in the current tenant's context: an email, or a signed webhook to
        one of the tenant's registered endpoints (its secret signs the body; an unregistered
        URL is refused, so a notice never goes unsigned). Raises on failure; the caller logs
        it."""
        if channel == "email":
            await self.mailer.send(target, subject, texts.notice(subject, body))
            return
        if channel != "webhook":
            raise ValueError(f"unknown notification channel {channel!r}")
        message_id = str(uuid.uuid4())
        async with self.uow() as uow:
            endpoint = await self.repository.endpoint_by_url(uow, target)
            if endpoint is None:
                raise ValueError(f"{target} is not a registered, active webhook endpoint")
            payload = {"id": message_id, "event": NOTICE_EVENT, "subject": subject, "data": body}
            status = await self.webhooks.deliver(
                target, endpoint["secret"], NOTICE_EVENT, message_id, payload
            )
            await self.repository.log(uow, message_id, "webhook", target, str(status))


__all__ = ["NOTICE_EVENT", "WEBHOOK_CREATE", "WEBHOOK_EVENTS", "NotificationService"]
