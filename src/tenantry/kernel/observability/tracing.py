"""OpenTelemetry traces: the API other code calls, W3C propagation, exporters.

``span("outbox.dispatch", message_id=...)`` opens a child of the current span (a no-op span
when tracing is off). ``inject(headers)`` / ``extract(headers)`` carry the W3C
``traceparent``/``tracestate`` in a dict of message headers; ``continue_trace(headers, name)``
opens a consumer span under the sender's trace. Exporters: OTLP/HTTP when configured,
console, and the PostgreSQL span store (``tenantry.otel_spans``, partitioned by day): finished
spans go to an in-memory buffer (bounded; overflow is counted and dropped) that a background
task writes in batches, never on the request path.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import deque
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tenantry.kernel.db.database import CONNECTION_HOOKS
from tenantry.kernel.observability import sql as q

if TYPE_CHECKING:
    from tenantry.kernel.db.database import Database
    from tenantry.kernel.observability.settings import TracingSettings

__all__ = [
    "SpanKind",
    "StatusCode",
    "continue_trace",
    "current_ids",
    "current_traceparent",
    "extract",
    "inject",
    "span",
]
_log = logging.getLogger("tenantry.tracing")
_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: Any = None
_recording = False
_bits = random.getrandbits


def recording() -> bool:
    """Whether spans are recorded (an exporter or the span store is configured)."""
    return _recording


#: The observability fields of the current request or consumed message (``request_id``,
#: ``trace_id``, ``span_id``, ``tenant_id``, ``principal``): one context variable, set once per
#: request by the middleware (``logs.bind_request``) and per message by ``continue_trace``.
#: Every log line merges it. When nothing records spans (the ids-only path) its ``trace_id``
#: and ``span_id`` are the current span: no OTel span, span context or context is made per
#: request. ``current_ids``, ``current_traceparent``, ``inject`` and ``span`` read it when no
#: recorded OTel span is current.
fields_var: ContextVar[dict[str, Any] | None] = ContextVar("tenantry_obs_fields", default=None)


def new_ids(parent: str | None = None) -> tuple[str, str]:
    """``(trace id hex, span id hex)`` of a new span: in the trace of ``parent`` (a W3C
    ``traceparent``) when it is a valid one, else in a new trace (as the W3C propagator
    treats a malformed header)."""
    ids = f"{_bits(192):048x}"  # one draw and one format for both (all-zero: 2^-64)
    trace_id = _trace_hex_of(parent) if parent else None
    return trace_id or ids[:32], ids[32:]


#: A W3C ``traceparent`` (lowercase hex; extra fields after the flags allowed for future
#: versions, as the spec says).
_TRACEPARENT = re.compile(r"\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(?:-|\s*$)")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def _trace_hex_of(traceparent: str) -> str | None:
    """The trace id of a valid ``traceparent``, or None if it is not one."""
    m = _TRACEPARENT.match(traceparent)
    if m is None or m[1] == "ff" or m[2] == _ZERO_TRACE or m[3] == _ZERO_SPAN:
        return None
    if m[1] == "00" and len(traceparent.strip()) != 55:
        return None  # version 00 has exactly four fields
    return m[2]


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def _current() -> tuple[str, str, str] | None:
    """``(trace id, span id, flags)`` in hex of the current span: a recorded OTel span if one
    is current, else the ids-only one of the request or message."""
    if _recording:
        sc = trace.get_current_span().get_span_context()
        if sc.is_valid:
            return f"{sc.trace_id:032x}", f"{sc.span_id:016x}", f"{int(sc.trace_flags):02x}"
    fields = fields_var.get()
    if fields is not None:
        trace_id = fields.get("trace_id")
        if trace_id is not None:
            return trace_id, fields["span_id"], "01"
    return None


def _ambient_context() -> otel_context.Context | None:
    """An OTel context holding the ids-only span, for a recorded span started under it."""
    cur = _current()
    if cur is None:
        return None
    sc = SpanContext(int(cur[0], 16), int(cur[1], 16), True, trace_flags=_SAMPLED)
    return trace.set_span_in_context(NonRecordingSpan(sc))


def server_span(name: str, parent: otel_context.Context | None) -> Any:
    """The HTTP server span (recording path): a recorded span continuing ``parent``."""
    return tracer().start_as_current_span(name, context=parent, kind=SpanKind.SERVER)


def tracer() -> trace.Tracer:
    if _tracer is not None:
        return _tracer  # type: ignore[no-any-return]
    return trace.get_tracer("tenantry")


@contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> Iterator[Span]:
    """A child span of the current one; exceptions are recorded and re-raised. When nothing
    records spans this is a no-op span (the current ids stay those of the request or
    message), which costs next to nothing."""
    if not _recording:
        yield trace.INVALID_SPAN
        return
    parent = None if trace.get_current_span().get_span_context().is_valid else _ambient_context()
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as s:
        yield s


def inject(headers: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Write the current trace context (``traceparent``, ``tracestate``) into ``headers``."""
    carrier: MutableMapping[str, str] = {} if headers is None else headers
    if _recording and trace.get_current_span().get_span_context().is_valid:
        _PROPAGATOR.inject(carrier)
    else:
        tp = current_traceparent()
        if tp is not None:
            carrier["traceparent"] = tp
    return carrier


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` naming the current span as the parent, or None outside any
    trace (what a message published now carries)."""
    cur = _current()
    if cur is None:
        return None
    return f"00-{cur[0]}-{cur[1]}-{cur[2]}"


def extract(headers: Mapping[str, str]) -> otel_context.Context:
    return _PROPAGATOR.extract(dict(headers))


@contextmanager
def continue_trace(
    headers: Mapping[str, str], name: str, kind: SpanKind = SpanKind.CONSUMER, **attributes: Any
) -> Iterator[Span]:
    """A span under the trace carried by message ``headers`` (consumers, jobs). When nothing
    records spans, only the ids: the carried trace id and a new span id become current."""
    if not _recording:
        trace_id, span_id = new_ids(headers.get("traceparent"))
        token = fields_var.set({"trace_id": trace_id, "span_id": span_id})
        try:
            yield trace.INVALID_SPAN
        finally:
            fields_var.reset(token)
        return
    ctx = extract(headers)
    with tracer().start_as_current_span(name, context=ctx, kind=kind, attributes=attributes) as s:
        yield s


def current_ids() -> tuple[str, str] | None:
    """``(trace id hex, span id hex)`` of the current span, or None outside any trace."""
    cur = _current()
    return None if cur is None else (cur[0], cur[1])


class PgSpanBuffer(SpanProcessor):
    """Collects finished spans for the PostgreSQL span store (flushed by a background task)."""

    def __init__(self, service: str, maxlen: int = 20_000) -> None:
        self.service = service
        self.buffer: deque[tuple[Any, ...]] = deque(maxlen=maxlen)
        self.dropped = 0

    def on_end(self, span: ReadableSpan) -> None:
        sc = span.context
        if sc is None or span.start_time is None or span.end_time is None:
            return
        if len(self.buffer) == self.buffer.maxlen:
            self.dropped += 1
        attrs = dict(span.attributes or {})
        tenant = attrs.get("tenant.id")
        try:
            tenant_uuid = UUID(str(tenant)) if tenant else None
        except ValueError:
            tenant_uuid = None
        self.buffer.append(
            (
                format(sc.trace_id, "032x"),
                format(sc.span_id, "016x"),
                format(span.parent.span_id, "016x") if span.parent else None,
                span.name,
                span.kind.name.lower(),
                datetime.fromtimestamp(span.start_time / 1e9, UTC),
                datetime.fromtimestamp(span.end_time / 1e9, UTC),
                (span.end_time - span.start_time) / 1e6,
                span.status.status_code.name.lower(),
                {
                    k: v if isinstance(v, str | int | float | bool) else str(v)
                    for k, v in attrs.items()
                },
                tenant_uuid,
                self.service,
            )
        )

    async def flush_to(self, db: Database, batch: int = 2_000) -> int:
        written = 0
        while self.buffer:
            rows = [self.buffer.popleft() for _ in range(min(batch, len(self.buffer)))]
            async with db.platform_unit_of_work() as uow:
                await uow.executemany(q.INSERT_SPANS, rows)
            written += len(rows)
        return written


def _sampler(settings: TracingSettings) -> Sampler:
    """Record spans only when something consumes them; otherwise keep ids only (cheap
    non-recording spans that still carry trace/span ids into logs, errors and headers)."""
    if settings.exporter == "none" and not settings.pg_store:
        return ALWAYS_OFF
    return ParentBased(TraceIdRatioBased(settings.sample_ratio))


def setup(settings: TracingSettings) -> PgSpanBuffer | None:
    """Install the process's tracer provider (once) with the configured exporters."""
    global _provider, _tracer, _recording
    if not settings.enabled:
        return None
    sampler = _sampler(settings)
    _recording = _recording or sampler is not ALWAYS_OFF
    if _provider is None:
        _provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=sampler,
        )
        _tracer = _provider.get_tracer("tenantry")
    elif sampler is not ALWAYS_OFF:
        # A later configuration with a consumer (tests, a second platform) turns recording on.
        _provider.sampler = sampler
        _tracer.sampler = sampler
        if settings.exporter == "console":
            _provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif settings.exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
            )
    if settings.pg_store:
        pg = PgSpanBuffer(settings.service_name)
        _provider.add_span_processor(pg)
        return pg
    return None


def _on_query(record: Any) -> None:
    """asyncpg query logger: a span for the statement under the caller's current span (the
    callback runs with a copy of the query's context). Untraced statements are skipped."""
    parent = trace.get_current_span()
    if not parent.is_recording():
        return
    end = time.time_ns()
    sql: str = record.query
    s = tracer().start_span(
        (sql.lstrip().split(None, 1) or ["SQL"])[0].upper(),
        kind=SpanKind.CLIENT,
        start_time=end - int(record.elapsed * 1e9),
        attributes={"db.system.name": "postgresql", "db.query.text": sql[:1000]},
    )
    if record.exception is not None:
        s.set_status(StatusCode.ERROR, type(record.exception).__name__)
    s.end(end_time=end)


def _add_query_logger(conn: Any) -> None:
    conn.add_query_logger(_on_query)


def install_db_hook(settings: TracingSettings) -> None:
    """Give every pooled connection opened from now on the statement-span logger (called at
    wiring time, before any pool exists)."""
    if settings.enabled and settings.db_statements and _add_query_logger not in CONNECTION_HOOKS:
        CONNECTION_HOOKS.append(_add_query_logger)


def set_error(s: Span, exc: BaseException) -> None:
    s.record_exception(exc)
    s.set_status(StatusCode.ERROR, type(exc).__name__)
