"""Notifications' HTTP routes (``/api/v1/notifications``): HTTP only. Each route parses its
request, calls the application service (``NotificationService``), and maps its result or
domain error to a response: a refused URL or an unknown event is a 422 naming the field,
decided here, never by the service."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.http.deps import require
from tenantry.kernel.tenancy.context import Principal
from tenantry_notifications.application.services import (
    WEBHOOK_EVENTS,
    NotificationService,
)
from tenantry_notifications.domain.endpoints import UnknownEvents
from tenantry_notifications.domain.targets import TargetRefused

ADMIN = "notifications:admin"

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


Admin = Annotated[Principal, Depends(require(ADMIN))]


@contextlib.contextmanager
def _problems() -> Iterator[None]:
    """The service's domain errors as 422 problems naming the field."""
    try:
        yield
    except TargetRefused as exc:
        raise ValidationFailed(
            f"url refused: {exc}", errors=[{"field": "url", "message": str(exc)}]
        ) from None
    except UnknownEvents as exc:
        raise ValidationFailed(str(exc), errors=[{"field": "events"}]) from None


def build_router(service: NotificationService[Any]) -> APIRouter:
    router = APIRouter(tags=["notifications"])

    @router.post("/webhooks", status_code=201, summary="Register a webhook endpoint")
    async def add_webhook(body: NewEndpoint, _: Admin) -> dict[str, Any]:
        with _problems():
            return await service.register_webhook(body.url, body.events)

    @router.get("/webhooks")
    async def list_webhooks(_: Admin) -> dict[str, Any]:
        return {"items": await service.endpoints()}

    return router


__all__ = ["ADMIN", "NewEndpoint", "build_router"]
