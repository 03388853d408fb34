"""Error-tracking notifications by e-mail: plugged into the kernel's error tracker when
``[notifications] error_emails`` names operators' addresses."""

from __future__ import annotations

from tenantry.kernel.observability.errors import Notification
from tenantry_notifications.domain.texts import error_alert
from tenantry_notifications.infrastructure.smtp import SmtpMailer


class ErrorMailNotifier:
    def __init__(self, mailer: SmtpMailer, recipients: list[str]) -> None:
        self.mailer = mailer
        self.recipients = recipients

    async def notify(self, n: Notification) -> None:
        subject, body = error_alert(
            n.error_type, n.message, n.environment, n.occurrences, n.reason, n.group_id
        )
        for to in self.recipients:
            await self.mailer.send(to, subject, body)
