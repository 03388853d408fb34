"""Notifications' startup object and routes (``/api/v1/notifications``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tenantry.capabilities.export.notify import Notifier
from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.http.deps import require
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.context import Principal
from tenantry.kernel.tenancy.contracts import TenantOnboarded
from tenantry.modules.identity.contracts import ApiClientCreated, UserAddedToTenant
from tenantry.modules.ledger.contracts import TransactionPosted
from tenantry.modules.notifications.application.handlers import NOTICE_EVENT, Notifications
from tenantry.modules.notifications.domain.targets import TargetRefused
from tenantry.modules.notifications.infrastructure.error_mail import ErrorMailNotifier
from tenantry.modules.notifications.infrastructure.repository import SqlNotificationStore
from tenantry.modules.notifications.infrastructure.smtp import SmtpMailer
from tenantry.modules.notifications.infrastructure.targets import TargetGuard
from tenantry.modules.notifications.infrastructure.webhooks import HttpWebhookSender

ADMIN = "notifications:admin"
WEBHOOK_EVENTS = (
    TransactionPosted.message_name,
    UserAddedToTenant.message_name,
    ApiClientCreated.message_name,
    NOTICE_EVENT,  # direct notices: exports that ended
)


class NotificationSettings(BaseModel):
    """``[notifications]``: e-mail (SMTP) and webhook delivery."""

    model_config = ConfigDict(extra="forbid")

    #: None (default): emails are logged, not sent (see infrastructure/smtp.py).
    smtp_host: str | None = None
    #: SMTP port.
    smtp_port: int = 25
    #: Use STARTTLS.
    smtp_starttls: bool = False
    #: SMTP login.
    smtp_username: str | None = None
    #: SMTP password.
    smtp_password: str | None = None
    #: From: of sent e-mail.
    sender: str = "Tenantry <no-reply@tenantry.local>"
    #: Delivery attempts of a webhook call.
    webhook_attempts: int = Field(default=3, ge=1, le=20)
    #: Delay before a webhook retry (doubles each time).
    webhook_backoff_s: float = Field(default=0.2, ge=0)
    #: Timeout of one webhook call.
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    #: Failures in a row that open an endpoint's circuit breaker.
    breaker_threshold: int = Field(default=5, ge=1)
    #: Seconds an open breaker waits before trying again.
    breaker_cooldown_s: float = Field(default=30.0, ge=0)
    #: Webhooks to loopback, private, link-local (cloud metadata) and other non-public
    #: addresses are refused at registration and at delivery. True: allowed (development,
    #: tests with a local receiver). Never in production.
    allow_private_targets: bool = False
    #: Operators' addresses for error-tracking notifications (thresholds, reopenings).
    error_emails: list[str] = Field(default_factory=list, max_length=50)


_PORT = r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
_HOST_CHAR = r"[^\s\x00-\x20/?#@:\[\]]"
#: http(s)://host[:port][/path...], the host a name (a letter in it: IP literals, which are
#: refused when they are loopback, private, link-local or metadata addresses, are not shown)
_URL = (
    rf"^[hH][tT][tT][pP][sS]?://{_HOST_CHAR}*[A-Za-z]{_HOST_CHAR}*{_PORT}"
    r"(?:[/?#][^\s\x00]*)?$"
)


class NewEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: http(s) only; loopback, private, link-local and metadata targets are refused (422)
    # the pattern documents the usual shape; ``parse_target`` decides (an IP literal is
    # accepted too when it is a public address)
    url: str = Field(max_length=2000, json_schema_extra={"pattern": _URL})
    events: list[Annotated[str, Field(json_schema_extra={"enum": list(WEBHOOK_EVENTS)})]] = Field(
        min_length=1, max_length=20
    )


class NotificationsModule(Module):
    name: ClassVar[str] = "notifications"
    migrations: ClassVar[str | None] = "tenantry.modules.notifications.migrations"
    permissions: ClassVar[dict[str, str]] = {ADMIN: "manage webhook endpoints"}
    settings_model = NotificationSettings

    def __init__(self) -> None:
        self.service: Notifications | None = None
        self.webhooks: HttpWebhookSender | None = None
        self.mailer: SmtpMailer | None = None
        self.guard: TargetGuard | None = None

    def setup(self, registrar: Registrar) -> None:
        s = registrar.settings.section(self.name, NotificationSettings)
        guard = TargetGuard(s.allow_private_targets)
        self.guard = guard
        webhooks = HttpWebhookSender(
            s.webhook_attempts,
            s.webhook_backoff_s,
            s.webhook_timeout_s,
            s.breaker_threshold,
            s.breaker_cooldown_s,
            guard,
        )
        mailer = SmtpMailer(
            s.smtp_host, s.smtp_port, s.sender, s.smtp_starttls, s.smtp_username, s.smtp_password
        )
        store = SqlNotificationStore()
        self.webhooks, self.mailer = webhooks, mailer
        if s.error_emails:
            registrar.add_error_notifier(ErrorMailNotifier(mailer, s.error_emails))
        service = Notifications(mailer, webhooks, store, registrar.db.unit_of_work)
        self.service = service
        registrar.provide(Notifier, service)
        d = registrar.dispatcher
        d.subscribe(self.name, TenantOnboarded, service.on_tenant_onboarded)
        d.subscribe(self.name, UserAddedToTenant, service.on_user_added)
        d.subscribe(self.name, ApiClientCreated, service.on_api_client_created)
        d.subscribe(self.name, TransactionPosted, service.on_transaction_posted)

        router = APIRouter(tags=["notifications"])

        @router.post("/webhooks", status_code=201, summary="Register a webhook endpoint")
        async def add_webhook(
            body: NewEndpoint, _: Annotated[Principal, Depends(require(ADMIN))]
        ) -> dict[str, Any]:
            try:
                await guard.vet(body.url)
            except TargetRefused as exc:
                msg = f"url refused: {exc}"
                raise ValidationFailed(
                    msg, errors=[{"field": "url", "message": str(exc)}]
                ) from None
            unknown = sorted(set(body.events) - set(WEBHOOK_EVENTS))
            if unknown:
                raise ValidationFailed(f"unknown events {unknown}", errors=[{"field": "events"}])
            async with registrar.db.unit_of_work() as uow:
                return await store.add_endpoint(uow, body.url, sorted(set(body.events)))

        @router.get("/webhooks")
        async def list_webhooks(
            _: Annotated[Principal, Depends(require(ADMIN))],
        ) -> dict[str, Any]:
            async with registrar.db.unit_of_work(readonly=True) as uow:
                return {"items": await store.endpoints(uow)}

        registrar.include_router(router)

    async def shutdown(self, platform: Platform) -> None:
        if self.webhooks is not None:
            await self.webhooks.close()


module = NotificationsModule()
