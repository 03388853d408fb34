"""In-memory fakes for notifications: the unit of work and the repository (the protocols of
notifications/application/ports.py), and the senders and target check, so
``NotificationService`` and ``NotificationHandlers`` run without PostgreSQL, SMTP or HTTP.

``FakeUnits`` is the unit-of-work factory: each unit of work works on a copy of the
endpoints and the log and keeps it, with the audit records collected on it, only when its
block ends without an exception (a rollback leaves nothing, as in the database).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias
from uuid import UUID

from tenantry.testing import fakes
from tenantry_notifications.application.handlers import NotificationHandlers
from tenantry_notifications.application.services import NotificationService
from tenantry_notifications.domain.targets import TargetRefused


@dataclass
class State:
    """One tenant's rows: endpoints in creation order, log rows as tuples."""

    endpoints: list[dict[str, Any]] = field(default_factory=list)
    log: list[tuple[str, str, str, str]] = field(default_factory=list)


FakeUnitOfWork: TypeAlias = fakes.FakeUnitOfWork[State]


class FakeUnits(fakes.FakeUnits[State]):
    """The unit-of-work factory (tenantry.testing.fakes) over an empty ``State``."""

    def __init__(self) -> None:
        super().__init__(State())


class FakeNotificationRepository:
    """``NotificationRepository[FakeUnitOfWork]``: the SQL of infrastructure/repository.py
    on lists."""

    async def endpoints_for(self, uow: FakeUnitOfWork, event: str) -> list[dict[str, Any]]:
        return [
            {k: e[k] for k in ("id", "url", "secret")}
            for e in uow.state.endpoints
            if e["active"] and event in e["events"]
        ]

    async def endpoint_by_url(self, uow: FakeUnitOfWork, url: str) -> dict[str, Any] | None:
        found = [e for e in uow.state.endpoints if e["active"] and e["url"] == url]
        return {k: found[0][k] for k in ("id", "url", "secret")} if found else None

    async def log(
        self, uow: FakeUnitOfWork, message_id: str, channel: str, target: str, status: str
    ) -> None:
        uow.write().log.append((message_id, channel, target, status))

    async def add_endpoint(
        self, uow: FakeUnitOfWork, endpoint_id: UUID, url: str, secret: str, events: list[str]
    ) -> None:
        uow.write().endpoints.append(
            {"id": endpoint_id, "url": url, "secret": secret, "events": events, "active": True}
        )

    async def endpoints(self, uow: FakeUnitOfWork) -> list[dict[str, Any]]:
        return [
            {"id": str(e["id"]), "url": e["url"], "events": e["events"], "active": e["active"]}
            for e in uow.state.endpoints
        ]


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))


class FakeWebhooks:
    """Records every delivery and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[dict[str, Any]] = []

    async def deliver(
        self, url: str, secret: str, event: str, message_id: str, body: dict[str, Any]
    ) -> int:
        self.calls.append(
            {"url": url, "secret": secret, "event": event, "message_id": message_id, "body": body}
        )
        return self.status


class FakeTargets:
    """Refuses the URLs in ``refused`` (as the guard refuses a non-public address)."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.vetted: list[str] = []

    async def vet(self, url: str) -> object:
        self.vetted.append(url)
        if url in self.refused:
            raise TargetRefused("127.0.0.1 is a loopback address")
        return url


@dataclass
class Fakes:
    service: NotificationService[FakeUnitOfWork]
    handlers: NotificationHandlers[FakeUnitOfWork]
    units: FakeUnits
    mailer: FakeMailer
    webhooks: FakeWebhooks
    targets: FakeTargets


def fake_notifications() -> Fakes:
    units, repository = FakeUnits(), FakeNotificationRepository()
    mailer, webhooks, targets = FakeMailer(), FakeWebhooks(), FakeTargets()
    return Fakes(
        NotificationService(units, repository, mailer, webhooks, targets),
        NotificationHandlers(mailer, webhooks, repository),
        units,
        mailer,
        webhooks,
        targets,
    )
