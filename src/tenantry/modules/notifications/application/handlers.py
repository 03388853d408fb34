"""Notification handlers. External effects (mail, HTTP) cannot join the transaction: they
are at-least-once (a redelivery after a failed commit sends again; webhook receivers
deduplicate on the message id), while the log row and the inbox row commit together."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry.kernel.tenancy.contracts import TenantOnboarded
from tenantry.modules.identity.contracts import ApiClientCreated, UserAddedToTenant
from tenantry.modules.ledger.contracts import TransactionPosted
from tenantry.modules.notifications.domain import texts


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


class WebhookSender(Protocol):
    async def deliver(
        self, url: str, secret: str, event: str, message_id: str, body: dict[str, Any]
    ) -> int: ...


class NotificationStore(Protocol):
    async def endpoints_for(self, uow: UnitOfWork, event: str) -> list[dict[str, Any]]: ...
    async def endpoint_by_url(self, uow: UnitOfWork, url: str) -> dict[str, Any] | None: ...
    async def log(
        self, uow: UnitOfWork, message_id: str, channel: str, target: str, status: str
    ) -> None: ...


#: The event name of direct notices from capabilities (exports' completion or failure).
NOTICE_EVENT = "platform.Notice.v1"

UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


class Notifications:
    def __init__(
        self,
        mailer: Mailer,
        webhooks: WebhookSender,
        store: NotificationStore,
        unit_of_work: UnitOfWorkFactory | None = None,
    ):
        self.mailer = mailer
        self.webhooks = webhooks
        self.store = store
        self.unit_of_work = unit_of_work

    async def refusal(self, uow: UnitOfWork, channel: str, target: str) -> str | None:
        """Exports ask before queueing: a webhook notice must go to one of the tenant's
        registered, active endpoints (it is signed with that endpoint's secret)."""
        if channel == "webhook" and await self.store.endpoint_by_url(uow, target) is None:
            return f"{target} is not one of this tenant's registered, active webhook endpoints"
        if channel not in ("email", "webhook"):
            return f"unknown notification channel {channel!r}"
        return None

    async def notify(self, channel: str, target: str, subject: str, body: dict[str, Any]) -> None:
        """A direct notice from a capability (exports call it when an export ends), in the
        current tenant's context: an email, or a signed webhook to one of the tenant's
        registered endpoints (its secret signs the body; an unregistered URL is refused, so
        a notice never goes unsigned). Raises on failure; the caller logs it."""
        if channel == "email":
            await self.mailer.send(target, subject, texts.notice(subject, body))
            return
        if channel != "webhook":
            raise ValueError(f"unknown notification channel {channel!r}")
        if self.unit_of_work is None:
            raise RuntimeError("webhook notices need a unit of work factory")
        message_id = str(uuid.uuid4())
        async with self.unit_of_work() as uow:
            endpoint = await self.store.endpoint_by_url(uow, target)
            if endpoint is None:
                raise ValueError(f"{target} is not a registered, active webhook endpoint")
            payload = {"id": message_id, "event": NOTICE_EVENT, "subject": subject, "data": body}
            status = await self.webhooks.deliver(
                target, endpoint["secret"], NOTICE_EVENT, message_id, payload
            )
            await self.store.log(uow, message_id, "webhook", target, str(status))

    async def on_tenant_onboarded(
        self, uow: UnitOfWork, ev: TenantOnboarded, ctx: MessageContext
    ) -> None:
        if not ev.admin_email:
            return
        subject, body = texts.welcome(ev.name, ev.slug)
        await self.mailer.send(ev.admin_email, subject, body)
        await self.store.log(uow, str(ctx.message_id), "email", ev.admin_email, "sent")

    async def on_user_added(
        self, uow: UnitOfWork, ev: UserAddedToTenant, ctx: MessageContext
    ) -> None:
        """An email to the new member (not to the onboarding admin: the welcome message is
        theirs), and the tenant's webhooks."""
        if ev.email and not ev.onboarding:
            subject, body = texts.added_to_tenant(ev.email, ev.roles)
            await self.mailer.send(ev.email, subject, body)
            await self.store.log(uow, str(ctx.message_id), "email", ev.email, "sent")
        await self._webhooks(uow, ev.message_name, ctx, ev.model_dump(mode="json"))

    async def on_api_client_created(
        self, uow: UnitOfWork, ev: ApiClientCreated, ctx: MessageContext
    ) -> None:
        await self._webhooks(uow, ev.message_name, ctx, ev.model_dump(mode="json"))

    async def on_transaction_posted(
        self, uow: UnitOfWork, ev: TransactionPosted, ctx: MessageContext
    ) -> None:
        await self._webhooks(uow, ev.message_name, ctx, ev.model_dump(mode="json"))

    async def _webhooks(
        self, uow: UnitOfWork, event: str, ctx: MessageContext, payload: dict[str, Any]
    ) -> None:
        body = {"id": str(ctx.message_id), "event": event, "data": payload}
        for ep in await self.store.endpoints_for(uow, event):
            status = await self.webhooks.deliver(
                ep["url"], ep["secret"], event, str(ctx.message_id), body
            )
            await self.store.log(uow, str(ctx.message_id), "webhook", ep["url"], str(status))
