"""Structured logs (structlog): JSON lines in production, a console renderer in dev.

Request context (request id, tenant, principal, trace ids) is bound by the HTTP middleware in
one context variable (``bind_request``), job context in structlog's contextvars by
``job_context``, so every line logged inside carries it. Stdlib logging (uvicorn, libraries,
``logging.getLogger``) goes through the same renderer.

The one line per HTTP request (``request_line``) skips the processor chain when the output is
JSON: the middleware already holds every field, so the line is one dict, one orjson call and
one buffered write, about a third of the cost of structlog's chain (docs/performance.md,
"Measurements behind the code"). Console output and a level above INFO go through structlog
as any other line.
"""

from __future__ import annotations

import atexit
import io
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from contextvars import Token
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tenantry.kernel.observability.tracing import current_ids, fields_var
from tenantry.kernel.tenancy.context import current_principal, current_tenant

__all__ = [
    "bind_request",
    "configure",
    "deferred",
    "get_logger",
    "job_context",
    "request_line",
    "reset_request",
]

#: The current request's log fields (request id, trace/span ids, tenant, principal), set once
#: per request by the observability middleware: one ContextVar.set instead of one per field.
#: The same variable tells tracing the ids-only span of the request (``tracing.fields_var``).
_request = fields_var


def bind_request(fields: dict[str, Any]) -> Token[dict[str, Any] | None]:
    return _request.set(fields)


def reset_request(token: Token[dict[str, Any] | None]) -> None:
    _request.reset(token)


def _request_fields(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    fields = _request.get()
    if fields:
        for k, v in fields.items():
            event.setdefault(k, v)
    return event


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

_ts_second = -1
_ts_prefix = ""


def _timestamp(now: float | None = None) -> str:
    """ISO 8601 UTC with microseconds, as ``TimeStamper(fmt="iso", utc=True)`` writes it; the
    date-time part is formatted once per second."""
    global _ts_second, _ts_prefix
    if now is None:
        now = time.time()
    sec = int(now)
    if sec != _ts_second:
        _ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        _ts_second = sec
    return "%s%06dZ" % (_ts_prefix, (now - sec) * 1_000_000)  # noqa: UP031 - measured faster


class BufferedBytesLogger:
    """Writes rendered lines to a buffered binary stream without a flush (a syscall) per
    line; ``flush()`` runs every second from the observability flusher and at shutdown, and
    after every warning or error line (``msg_now``).
    Measured: the per-line flush of structlog's BytesLogger dominated the request log cost on
    the loaded bench box.

    A raw (unbuffered) stream, as ``sys.stdout.buffer`` is under ``PYTHONUNBUFFERED=1`` (usual
    in containers, and set on the bench box), gets a 64 KiB buffer of its own: otherwise
    every line is a ``write`` system call."""

    def __init__(self, stream: Any) -> None:
        if isinstance(stream, io.RawIOBase):
            # A FileIO of our own on the same descriptor: closing (or collecting) the buffer
            # must not close the process's sys.stdout.buffer.
            raw = io.FileIO(stream.fileno(), "wb", closefd=False)
            stream = io.BufferedWriter(raw, buffer_size=1 << 16)
        self._stream = stream
        self._write = stream.write
        self.flush = stream.flush

    def msg(self, message: bytes) -> None:
        self._write(message + b"\n")

    def write_line(self, line: bytes) -> None:
        """A rendered line that already ends with a newline."""
        self._write(line)

    def msg_now(self, message: bytes) -> None:
        """Warnings and errors are written through at once: the line that explains a crash
        must not wait in the buffer for the next flush."""
        self._write(message + b"\n")
        self.flush()

    log = debug = info = msg
    warn = warning = err = error = critical = exception = fatal = msg_now


_buffered: list[BufferedBytesLogger] = []

#: Where ``request_line`` writes a rendered JSON line (None: go through structlog).
_sink: Callable[[bytes], None] | None = None
_request_log: Any = None
#: Whether request lines go to the buffered stdout, flushed once a second: request
#: accounting may then wait for that flush too (``accounting.RequestAccounting``).
_sink_buffered = False


def deferred() -> bool:
    """True when request lines are written to the buffered stdout (JSON, INFO, structlog
    still configured as ``configure`` left it), which is flushed once a second anyway."""
    return _sink_buffered and structlog.is_configured()


def request_line(
    method: str,
    route: str,
    path: str,
    status: int,
    duration_ms: float,
    now: float | None = None,
    context: dict[str, Any] | None = None,
) -> None:
    """Log the per-request line (``event: "request"``, method, route, path, status,
    duration_ms) at INFO with the request context (``context``, else the one of
    ``bind_request``), a level and a timestamp: the same keys the structlog chain writes.
    Direct when JSON is configured (one dict, one orjson call), else through structlog."""
    sink = _sink
    if sink is not None and structlog.is_configured():
        ctx = context if context is not None else _request.get()
        event = {
            "event": "request",
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            **(ctx or {}),
            "level": "info",
            "timestamp": _timestamp(now),
        }
        sink(orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE))
        return
    global _request_log
    if _request_log is None:
        _request_log = structlog.get_logger("tenantry.http")
    _request_log.info(
        "request", method=method, route=route, path=path, status=status, duration_ms=duration_ms
    )


def flush() -> None:
    """Flush buffered JSON log lines (called every second and at shutdown)."""
    for b in _buffered:
        with suppress(OSError, ValueError):
            b.flush()


atexit.register(flush)


def _text_sink(out: TextIO) -> Callable[[bytes], None]:
    def write(line: bytes) -> None:
        out.write(line.decode())

    return write


def _exc_info(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    return _format_exc(logger, name, event) if "exc_info" in event else event


def configure(fmt: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger (call once per process).

    Kept lean for the per-request line: orjson straight to bytes (stdout's buffer), no
    exception formatting unless there is an exception.
    """
    global _sink, _sink_buffered
    out = stream or sys.stdout
    shared: list[Processor] = [
        _request_fields,
        structlog.contextvars.merge_contextvars,
        _ambient,
        _trace,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    console = fmt == "console"
    binary = not console and stream is None
    flush()  # lines still buffered by a previous configuration
    buffered = BufferedBytesLogger(sys.stdout.buffer) if binary else None
    _buffered[:] = [buffered] if buffered is not None else []
    _sink_buffered = False
    if console or logging.getLevelName(level) > logging.INFO:
        _sink = None
    elif buffered is not None:
        _sink = buffered.write_line
        _sink_buffered = True
    else:
        _sink = _text_sink(out)
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if console
        else structlog.processors.JSONRenderer(serializer=_orjson if binary else _orjson_str)
    )
    structlog.configure(
        processors=[*shared, _exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=(
            (lambda *_: buffered) if buffered is not None else structlog.PrintLoggerFactory(out)
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
