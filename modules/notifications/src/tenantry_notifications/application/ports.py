"""What notifications' use cases need from the outside world: a unit of work (opened from
the factory the service is given, or handed to a message handler by the dispatcher), a
repository that works inside it, and the senders (mail, webhooks) and the target check,
whose effects cannot join a transaction.

The unit of work and the repository are protocols generic over the unit of work's type, so
the service runs the same way on the kernel's ``UnitOfWork`` + ``SqlNotificationRepository``
and on the in-memory fakes of the unit tests (modules/notifications/tests/notifications_fakes.py).
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from tenantry.kernel.db.ports import W_contra


class NotificationRepository(Protocol[W_contra]):
    """Webhook endpoints and the notification log, inside the caller's unit of work (never
    opens, commits, publishes or audits)."""

    async def endpoints_for(self, uow: W_contra, event: str) -> list[dict[str, Any]]: ...

    async def endpoint_by_url(self, uow: W_contra, url: str) -> dict[str, Any] | None: ...

    async def log(
        self, uow: W_contra, message_id: str, channel: str, target: str, status: str
    ) -> None: ...

    async def add_endpoint(
        self, uow: W_contra, endpoint_id: UUID, url: str, secret: str, events: list[str]
    ) -> None: ...

    async def endpoints(self, uow: W_contra) -> list[dict[str, Any]]: ...


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


class WebhookSender(Protocol):
    async def deliver(
        self, url: str, secret: str, event: str, message_id: str, body: dict[str, Any]
    ) -> int: ...


class TargetCheck(Protocol):
    """Whether a URL may be a webhook target now (it resolves the name): raises
    ``domain.targets.TargetRefused`` saying why not."""

    async def vet(self, url: str) -> object: ...
