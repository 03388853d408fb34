"""Notifications' startup object: wiring only (no I/O, no SQL).

``setup`` builds the senders (SMTP, signed webhooks behind the target guard), the
application service on the kernel's unit-of-work factory and the SQL repository (it is also
the platform's ``Notifier``), subscribes the handlers of the events it consumes, and mounts
the routes. A registered webhook endpoint is audited on the service's unit of work and
written by the kernel at its commit.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from tenantry.capabilities.export.notify import Notifier
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.contracts import TenantOnboarded
from tenantry_identity.contracts import ApiClientCreated, UserAddedToTenant
from tenantry_ledger.contracts import TransactionPosted
from tenantry_notifications.application.handlers import NotificationHandlers
from tenantry_notifications.application.services import (
    NOTICE_EVENT,
    WEBHOOK_EVENTS,
    NotificationService,
)
from tenantry_notifications.infrastructure.error_mail import ErrorMailNotifier
from tenantry_notifications.infrastructure.repository import SqlNotificationRepository
from tenantry_notifications.infrastructure.smtp import SmtpMailer
from tenantry_notifications.infrastructure.targets import TargetGuard
from tenantry_notifications.infrastructure.webhooks import HttpWebhookSender
from tenantry_notifications.routes import ADMIN, build_router


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


class NotificationsModule(Module):
    name: ClassVar[str] = "notifications"
    migrations: ClassVar[str | None] = "tenantry_notifications.migrations"
    permissions: ClassVar[dict[str, str]] = {ADMIN: "manage webhook endpoints"}
    settings_model = NotificationSettings

    def __init__(self) -> None:
        #: The last platform's service (one module object may serve several platforms:
        #: ``platform.use(Notifier)`` is the platform's own).
        self.service: NotificationService[UnitOfWork] | None = None

    def setup(self, registrar: Registrar) -> None:
        s = registrar.settings.section(self.name, NotificationSettings)
        guard = TargetGuard(s.allow_private_targets)
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
        repository = SqlNotificationRepository()
        if s.error_emails:
            registrar.add_error_notifier(ErrorMailNotifier(mailer, s.error_emails))
        service = NotificationService(
            registrar.db.unit_of_work, repository, mailer, webhooks, guard
        )
        self.service = service
        registrar.provide(Notifier, service)
        handlers = NotificationHandlers(mailer, webhooks, repository)
        d = registrar.dispatcher
        d.subscribe(self.name, TenantOnboarded, handlers.on_tenant_onboarded)
        d.subscribe(self.name, UserAddedToTenant, handlers.on_user_added)
        d.subscribe(self.name, ApiClientCreated, handlers.on_api_client_created)
        d.subscribe(self.name, TransactionPosted, handlers.on_transaction_posted)
        registrar.include_router(build_router(service))

    async def shutdown(self, platform: Platform) -> None:
        service = platform.find(Notifier)  # this platform's (not the last one set up)
        if isinstance(service, NotificationService) and isinstance(
            service.webhooks, HttpWebhookSender
        ):
            await service.webhooks.close()


module = NotificationsModule()

__all__ = ["ADMIN", "NOTICE_EVENT", "WEBHOOK_EVENTS", "NotificationsModule", "module"]
