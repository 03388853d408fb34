"""Email over SMTP (stdlib smtplib, run off the event loop).

With no SMTP host configured (``[notifications] smtp_host``, the default), mail is written to
the log instead of sent: a fresh install has no mail server, and a notification that can never
be delivered should not become a dead letter.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage

_log = logging.getLogger("tenantry.notifications")


class SmtpMailer:
    def __init__(
        self,
        host: str | None,
        port: int,
        sender: str,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout_s = timeout_s

    def _send(self, msg: EmailMessage) -> None:
        assert self.host is not None
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)

    async def send(self, to: str, subject: str, body: str) -> None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(body)
        if self.host is None:
            _log.info("email not sent (no notifications.smtp_host): to=%s subject=%s", to, subject)
            return
        await asyncio.to_thread(self._send, msg)
