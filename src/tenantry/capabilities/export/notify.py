"""Completion and failure notices.

The notifications module (another branch) delivers email and signed webhooks. Until it is
present, notices go to the log. Integration point: the implementation a module provides for
the ``Notifier`` port (``registrar.provide(Notifier, service)``: ``async notify(channel,
target, subject, body)``, ``channel`` is ``"email"`` or ``"webhook"``) is used when present.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tenantry.kernel.db.uow import UnitOfWork
    from tenantry.kernel.registrar import Capabilities

_log = logging.getLogger("tenantry.exports")


@runtime_checkable
class Notifier(Protocol):
    async def notify(
        self, channel: str, target: str, subject: str, body: dict[str, Any]
    ) -> None: ...

    async def refusal(self, uow: UnitOfWork, channel: str, target: str) -> str | None:
        """Why ``target`` cannot be notified on ``channel`` (checked when the export is
        requested, in its unit of work), or None."""
        ...


class LogNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, dict[str, Any]]] = []

    async def refusal(self, uow: UnitOfWork, channel: str, target: str) -> str | None:
        if channel == "webhook":
            return "webhook notices need the notifications module, which is not loaded"
        return None

    async def notify(self, channel: str, target: str, subject: str, body: dict[str, Any]) -> None:
        self.sent.append((channel, target, subject, body))
        _log.info("export notice via %s to %s: %s %s", channel, target, subject, body)


def resolve_notifier(capabilities: Capabilities) -> Notifier:
    """The notifications module's ``Notifier`` when one is provided, else the log (one per
    platform, kept with its capabilities)."""
    svc = capabilities.find(Notifier)
    if svc is not None:
        return svc
    fallback = capabilities.find(LogNotifier)
    if fallback is None:
        fallback = LogNotifier()
        capabilities.provide(LogNotifier, fallback, "exports")
    return fallback
