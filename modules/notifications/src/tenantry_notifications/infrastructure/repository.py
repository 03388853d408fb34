"""Webhook endpoints and the notification log (tenant store), in the caller's unit of work."""

from __future__ import annotations

import uuid
from typing import Any

from tenantry.kernel.db.uow import UnitOfWork
from tenantry_notifications.infrastructure.sql import (
    ENDPOINT_BY_URL,
    ENDPOINTS_FOR,
    INSERT_ENDPOINT,
    INSERT_LOG,
    LIST_ENDPOINTS,
)


class SqlNotificationRepository:
    """``NotificationRepository[UnitOfWork]``: never opens a transaction, publishes or
    audits."""

    async def endpoints_for(self, uow: UnitOfWork, event: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await uow.fetch(ENDPOINTS_FOR, event)]

    async def endpoint_by_url(self, uow: UnitOfWork, url: str) -> dict[str, Any] | None:
        row = await uow.fetchrow(ENDPOINT_BY_URL, url)
        return dict(row) if row else None

    async def log(
        self, uow: UnitOfWork, message_id: str, channel: str, target: str, status: str
    ) -> None:
        await uow.execute(INSERT_LOG, uuid.UUID(message_id), channel, target, status)

    async def add_endpoint(
        self, uow: UnitOfWork, endpoint_id: uuid.UUID, url: str, secret: str, events: list[str]
    ) -> None:
        await uow.execute(INSERT_ENDPOINT, endpoint_id, url, secret, events)

    async def endpoints(self, uow: UnitOfWork) -> list[dict[str, Any]]:
        return [
            {
                "id": str(r["id"]),
                "url": r["url"],
                "events": r["events"],
                "active": r["active"],
                "created_at": r["created_at"].isoformat(),
            }
            for r in await uow.fetch(LIST_ENDPOINTS)
        ]
