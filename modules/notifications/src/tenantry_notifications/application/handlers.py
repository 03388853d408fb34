"""Notifications' message handlers: the welcome email, the new member's email, and the
tenant's webhooks for the events it consumes. Each gets the dispatcher's unit of work (the
sender's tenant; the tenant filter and RLS apply) and writes through the repository.

External effects (mail, HTTP) cannot join the transaction: they are at-least-once (a
redelivery after a failed commit sends again; webhook receivers deduplicate on the message
id), while the log row and the inbox row commit together."""

from __future__ import annotations

from typing import Any, Generic

from tenantry.kernel.db.ports import W
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry.kernel.tenancy.contracts import TenantOnboarded
from tenantry_identity.contracts import ApiClientCreated, UserAddedToTenant
from tenantry_ledger.contracts import TransactionPosted
from tenantry_notifications.application.ports import (
    Mailer,
    NotificationRepository,
    WebhookSender,
)
from tenantry_notifications.domain import texts


class NotificationHandlers(Generic[W]):
    """Generic in the unit of work's type (the kernel's ``UnitOfWork`` when subscribed; the
    fakes of modules/notifications/tests/notifications_fakes.py in unit tests)."""

    def __init__(
        self,
        mailer: Mailer,
        webhooks: WebhookSender,
        repository: NotificationRepository[W],
    ) -> None:
        self.mailer = mailer
        self.webhooks = webhooks
        self.repository = repository

    async def on_tenant_onboarded(self, uow: W, ev: TenantOnboarded, ctx: MessageContext) -> None:
        if not ev.admin_email:
            return
        subject, body = texts.welcome(ev.name, ev.slug)
        await self.mailer.send(ev.admin_email, subject, body)
        await self.repository.log(uow, str(ctx.message_id), "email", ev.admin_email, "sent")

    async def on_user_added(self, uow: W, ev: UserAddedToTenant, ctx: MessageContext) -> None:
        """An email to the new member (not to the onboarding admin: the welcome message is
        theirs), and the tenant's webhooks."""
        if ev.email and not ev.onboarding:
            subject, body = texts.added_to_tenant(ev.email, ev.roles)
            await self.mailer.send(ev.email, subject, body)
            await self.repository.log(uow, str(ctx.message_id), "email", ev.email, "sent")
        await self._webhooks(uow, ev.message_name, ctx, ev.model_dump(mode="json"))

    async def on_api_client_created(
        self, uow: W, ev: ApiClientCreated, ctx: MessageContext
    ) -> None:
        await self._webhooks(uow, ev.message_name, ctx, ev.model_dump(mode="json"))

    async def on_transaction_posted(
        self, uow: W, ev: TransactionPosted, ctx: MessageContext
    ) -> None:
        await self._webhooks(uow, ev.message_name, ctx, ev.model_dump(mode="json"))

    async def _webhooks(
        self, uow: W, event: str, ctx: MessageContext, payload: dict[str, Any]
    ) -> None:
        body = {"id": str(ctx.message_id), "event": event, "data": payload}
        for ep in await self.repository.endpoints_for(uow, event):
            status = await self.webhooks.deliver(
                ep["url"], ep["secret"], event, str(ctx.message_id), body
            )
            await self.repository.log(uow, str(ctx.message_id), "webhook", ep["url"], str(status))
