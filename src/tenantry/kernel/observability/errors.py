"""Error tracking in PostgreSQL (a Sentry replacement for the common case).

Every unhandled exception is fingerprinted (exception type + normalized in-app frames:
module and function, no line numbers, so an edit elsewhere in a file does not split a
group), grouped in ``error_groups`` (first/last seen, count, status, environment, release)
and stored as an occurrence in ``error_occurrences`` (partitioned by month). A group that was
``resolved`` and recurs is reopened. Notifications go out on the configured occurrence counts
(1, 10, 100, 1000...) and on every reopening, to pluggable notifiers (log, webhook; the
notifications module can add its own).

Writing never fails the request it reports on and never runs in the failed transaction:
``capture_exception`` snapshots the exception at once and writes it from a background task
on its own pooled connection; any failure there is logged and dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import traceback
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import orjson

from tenantry.kernel.observability import metrics
from tenantry.kernel.observability import sql as q
from tenantry.kernel.tenancy.audit import record

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.observability.settings import ErrorTrackingSettings
    from tenantry.kernel.tenancy.audit import PlatformAudit

_log = logging.getLogger("tenantry.errors")
STATUSES = ("unresolved", "resolved", "ignored")
_SITE = ("site-packages", "dist-packages", os.sep + "lib" + os.sep + "python")


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A snapshot of one exception, taken where it was caught."""

    error_type: str
    message: str
    fingerprint: str
    culprit: str | None
    stack: list[dict[str, Any]]
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notification:
    group_id: int
    fingerprint: str
    error_type: str
    message: str
    environment: str
    occurrences: int
    reason: str  # "threshold" | "reopened"


class Notifier(Protocol):
    async def notify(self, n: Notification) -> None: ...


class LogNotifier:
    async def notify(self, n: Notification) -> None:
        _log.warning(
            "error %s: %s #%d %s: %s",
            n.reason,
            n.fingerprint[:12],
            n.occurrences,
            n.error_type,
            n.message[:200],
        )


class WebhookNotifier:
    """POSTs the notification as JSON (off the event loop; 5 s timeout)."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be http(s)")
        self.url = url

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            resp.read()

    async def notify(self, n: Notification) -> None:
        body = orjson.dumps(
            {
                "event": "error." + n.reason,
                "group_id": n.group_id,
                "fingerprint": n.fingerprint,
                "error_type": n.error_type,
                "message": n.message,
                "environment": n.environment,
                "occurrences": n.occurrences,
            }
        )
        await asyncio.to_thread(self._post, body)


def _in_app(filename: str) -> bool:
    return not any(s in filename for s in _SITE)


def _module_of(filename: str) -> str:
    """A stable, machine-independent name for a source file."""
    parts = filename.replace("\\", "/").split("/")
    if "tenantry" in parts:
        parts = parts[parts.index("tenantry") :]
    elif "tests" in parts:
        parts = parts[parts.index("tests") :]
    else:
        parts = parts[-2:]
    name = "/".join(parts)
    return name[:-3] if name.endswith(".py") else name


def snapshot(exc: BaseException, context: dict[str, Any] | None = None) -> ErrorEvent:
    """Fingerprint and stack of ``exc`` (pure: no I/O)."""
    frames = traceback.extract_tb(exc.__traceback__)
    stack = [
        {
            "module": _module_of(f.filename),
            "function": f.name,
            "lineno": f.lineno,
            "line": (f.line or "")[:200],
            "in_app": _in_app(f.filename),
        }
        for f in frames
    ]
    app_frames = [s for s in stack if s["in_app"]] or stack
    etype = type(exc)
    type_name = f"{etype.__module__}.{etype.__qualname__}"
    basis = type_name + "\n" + "\n".join(f"{s['module']}:{s['function']}" for s in app_frames)
    fingerprint = hashlib.sha256(basis.encode()).hexdigest()[:32]
    culprit = f"{app_frames[-1]['module']}:{app_frames[-1]['function']}" if app_frames else None
    return ErrorEvent(
        type_name, str(exc)[:2000], fingerprint, culprit, stack[-50:], dict(context or {})
    )


@dataclass(frozen=True, slots=True)
class CaptureResult:
    group_id: int
    occurrences: int
    reopened: bool
    notified: bool


def _uuid(v: Any) -> UUID | None:
    if v is None:
        return None
    try:
        return v if isinstance(v, UUID) else UUID(str(v))
    except ValueError:
        return None


class ErrorTracker:
    def __init__(
        self,
        db: Database,
        settings: ErrorTrackingSettings,
        environment: str,
        release: str | None = None,
        *,
        audit: PlatformAudit,
    ) -> None:
        self.db = db
        #: Opens the unit of work of a triage, recorded in the operator tenant's log.
        self.audit = audit
        self.settings = settings
        self.environment = environment
        self.release = release or settings.release
        self.notifiers: list[Notifier] = [LogNotifier()]
        if settings.webhook_url:
            self.notifiers.append(WebhookNotifier(settings.webhook_url))
        self._pending: set[asyncio.Task[Any]] = set()
        self._thresholds = frozenset(settings.notify_at)

    def add_notifier(self, notifier: Notifier) -> None:
        """Plug in another channel (the notifications module: e-mail, chat...)."""
        self.notifiers.append(notifier)

    # -- capture ----------------------------------------------------------------------------
    def capture_exception(
        self, exc: BaseException, context: dict[str, Any] | None = None, source: str = "app"
    ) -> asyncio.Task[CaptureResult | None] | None:
        """Record ``exc`` in the background; never raises. Returns the task (or None when
        tracking is disabled or there is no running event loop)."""
        try:
            if not self.settings.enabled:
                return None
            event = snapshot(exc, context)
            metrics.ERRORS_CAPTURED.labels(source=source).inc()
            loop = asyncio.get_running_loop()
        except Exception:
            _log.warning("could not capture %r", exc, exc_info=True)
            return None
        task = loop.create_task(self._safe_write(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def capture(
        self, exc: BaseException, context: dict[str, Any] | None = None
    ) -> CaptureResult:
        """Record ``exc`` now (jobs, tests); raises if the database write fails."""
        return await self.write(snapshot(exc, context))

    async def flush(self) -> None:
        """Wait for background writes (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _safe_write(self, event: ErrorEvent) -> CaptureResult | None:
        try:
            return await self.write(event)
        except Exception:
            _log.warning("error tracking write failed for %s", event.error_type, exc_info=True)
            return None

    async def write(self, event: ErrorEvent) -> CaptureResult:
        ctx = event.context
        request = ctx.get("request")
        extra = {
            k: v
            for k, v in ctx.items()
            if k not in ("request", "tenant_id", "principal", "request_id", "trace_id")
        }
        async with self.db.platform_unit_of_work() as uow:
            row = await uow.fetchrow(
                q.UPSERT_GROUP,
                event.fingerprint,
                self.environment,
                event.error_type,
                event.message,
                event.culprit,
                self.release,
            )
            assert row is not None
            await uow.execute(
                q.INSERT_OCCURRENCE,
                row["id"],
                event.message,
                event.stack,
                request,
                orjson.loads(orjson.dumps(extra, default=str)) if extra else None,
                _uuid(ctx.get("tenant_id")),
                None if ctx.get("principal") is None else str(ctx["principal"]),
                ctx.get("request_id"),
                ctx.get("trace_id"),
                self.release,
            )
        count, reopened = int(row["occurrences"]), bool(row["reopened"])
        notify = reopened or count in self._thresholds
        if notify:
            n = Notification(
                row["id"],
                event.fingerprint,
                event.error_type,
                event.message,
                self.environment,
                count,
                "reopened" if reopened else "threshold",
            )
            for notifier in self.notifiers:
                try:
                    await notifier.notify(n)
                except Exception:
                    _log.warning("notifier %r failed", notifier, exc_info=True)
        return CaptureResult(int(row["id"]), count, reopened, notify)

    # -- reading and triage -----------------------------------------------------------------
    async def list(
        self, status: str | None = None, limit: int = 50, environment: str | None = None
    ) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        async with self.db.platform_unit_of_work() as uow:
            rows = await uow.fetch(q.LIST_GROUPS, status, environment, min(max(limit, 1), 500))
        return [_group(r) for r in rows]

    async def show(self, group_id: int, occurrences: int = 10) -> dict[str, Any] | None:
        async with self.db.platform_unit_of_work() as uow:
            row = await uow.fetchrow(q.GET_GROUP, group_id)
            if row is None:
                return None
            occ = await uow.fetch(q.LIST_OCCURRENCES, group_id, occurrences)
        out = _group(row)
        out["recent"] = [
            {
                "occurred_at": o["occurred_at"].isoformat(),
                "message": o["message"],
                "stack": o["stack"],
                "request": o["request"],
                "context": o["context"],
                "tenant_id": str(o["tenant"]) if o["tenant"] else None,
                "principal": o["principal"],
                "request_id": o["request_id"],
                "trace_id": o["trace_id"],
                "release": o["release"],
            }
            for o in occ
        ]
        return out

    async def set_status(self, group_id: int, status: str) -> bool:
        """Triage a group (False: no such group): the one path of ``PATCH
        /platform/errors/{id}`` and ``tenantry errors resolve``. Audited as
        ``error.status_set`` in the operator tenant's log, in the transaction of the change
        (kernel/tenancy/audit), by the caller in context: the token's subject over HTTP, none
        on the command line. The group's row is locked while its old status is read."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        async with self.audit.platform_wide() as uow:
            before = await uow.fetchval(q.LOCK_GROUP_STATUS, group_id)
            if before is None:
                return False
            await uow.execute(q.SET_STATUS, group_id, status)
            record(
                uow,
                "error.status_set",
                f"error_group:{group_id}",
                before={"status": before},
                after={"status": status},
            )
        return True


def _group(r: Any) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {
        "id": r["id"],
        "fingerprint": r["fingerprint"],
        "environment": r["environment"],
        "error_type": r["error_type"],
        "message": r["message"],
        "culprit": r["culprit"],
        "status": r["status"],
        "occurrences": r["occurrences"],
        "first_seen": iso(r["first_seen"]),
        "last_seen": iso(r["last_seen"]),
        "first_release": r["first_release"],
        "release": r["release"],
        "resolved_at": iso(r["resolved_at"]),
    }
