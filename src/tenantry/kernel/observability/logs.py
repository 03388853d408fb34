"""Structured logs (structlog): JSON lines in production, a console renderer in dev.

Request and job context (request id, tenant, principal, trace ids) is bound in contextvars by
the middleware and ``job_context``, so every line logged inside carries it. Stdlib logging
(uvicorn, libraries, ``logging.getLogger``) goes through the same renderer.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tenantry.kernel.observability.tracing import current_ids
from tenantry.kernel.tenancy.context import current_principal, current_tenant

__all__ = ["configure", "get_logger", "job_context"]


def _orjson(obj: Any, **_: Any) -> bytes:
    return orjson.dumps(obj, default=str)


def _orjson_str(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def _ambient(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Tenant and principal from the ambient context when the line did not bind them."""
    if "tenant_id" not in event:
        tenant = current_tenant()
        if tenant is not None:
            event["tenant_id"] = str(tenant.id)
    if "principal" not in event:
        p = current_principal()
        if p is not None:
            event["principal"] = p.subject
    return event


def _trace(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    if "trace_id" not in event:
        ids = current_ids()
        if ids is not None:
            event["trace_id"], event["span_id"] = ids
    return event


_format_exc = structlog.processors.format_exc_info


def _exc_info(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    return _format_exc(logger, name, event) if "exc_info" in event else event


def configure(fmt: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger (call once per process).

    Kept lean for the per-request line: orjson straight to bytes (stdout's buffer), no
    exception formatting unless there is an exception.
    """
    out = stream or sys.stdout
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _ambient,
        _trace,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    console = fmt == "console"
    binary = not console and stream is None
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if console
        else structlog.processors.JSONRenderer(serializer=_orjson if binary else _orjson_str)
    )
    structlog.configure(
        processors=[*shared, _exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=(
            structlog.BytesLoggerFactory(sys.stdout.buffer)
            if binary
            else structlog.PrintLoggerFactory(out)
        ),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared, _exc_info],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.dev.ConsoleRenderer(colors=False)
                if console
                else structlog.processors.JSONRenderer(serializer=_orjson_str),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


def get_logger(name: str = "tenantry") -> Any:
    return structlog.get_logger(name)


@asynccontextmanager
async def job_context(
    job: str,
    on_error: Callable[[BaseException, dict[str, Any]], object] | None = None,
    **fields: Any,
) -> AsyncIterator[Any]:
    """Bind a job's context for its duration; log start/end (with duration) and capture an
    escaping exception with ``on_error`` (e.g. ``ErrorTracker.capture_exception``)."""
    log = get_logger("tenantry.jobs")
    with structlog.contextvars.bound_contextvars(job=job, **fields):
        started = time.perf_counter()
        try:
            yield log
        except Exception as exc:
            ms = round((time.perf_counter() - started) * 1000, 3)
            log.error("job failed", duration_ms=ms, error=type(exc).__name__)
            if on_error is not None:
                on_error(exc, {"job": job, **fields})
            raise
        log.info("job done", duration_ms=round((time.perf_counter() - started) * 1000, 3))
