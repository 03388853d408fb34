"""Messages on the wire: the envelope, its headers, and the one codec both transports use.

A message type is a pydantic model with a ``message_name`` ClassVar such as
``ledger.TransactionPosted.v1``: the owner module, the type, the version. The body on the
wire is the JSON of ``model_dump(mode="json")``; the in-process transport encodes and decodes
through the same two functions, so moving an edge between transports changes no behaviour.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, runtime_checkable
from uuid import UUID

import orjson

from tenantry.kernel.observability import tracing

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*\.v[0-9]+$")


@runtime_checkable
class Message(Protocol):
    message_name: ClassVar[str]

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


def name_of(message: type[Any] | Any) -> str:
    name = getattr(message, "message_name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise TypeError(
            f"{message!r} has no valid message_name ('<module>.<Type>.v<N>', e.g. "
            "'ledger.TransactionPosted.v1')"
        )
    return name


def owner_of(name: str) -> str:
    """The module that declares a message: the first part of its name."""
    return name.split(".", 1)[0]


def fast_uuid4() -> uuid.UUID:
    """A random (version 4) UUID from the process PRNG: ids must be unique, not secret, and
    ``uuid4()`` (a syscall per id) dominated in-process dispatch time."""
    return uuid.UUID(int=random.getrandbits(128) & _V4_MASK | _V4_BITS)


_V4_MASK = ~(0xF000 << 64) & ~(0xC000 << 48) & ((1 << 128) - 1)
_V4_BITS = (0x4000 << 64) | (0x8000 << 48)


def new_traceparent(trace_id: str | None = None) -> str:
    """A W3C trace context ``traceparent``: a new span in ``trace_id`` (or a new trace)."""
    tid = trace_id or f"{random.getrandbits(128):032x}"
    return f"00-{tid}-{random.getrandbits(64):016x}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    if traceparent and len(traceparent) == 55 and traceparent[2] == "-":
        return traceparent[3:35]
    return None


@dataclass(frozen=True, slots=True)
class Headers:
    """What travels with every message (AMQP headers on the bus, a jsonb column in the
    outbox): the tenant, the correlation and causation ids, the W3C trace context."""

    tenant_id: UUID | None
    correlation_id: str
    causation_id: str | None
    traceparent: str

    def as_dict(self) -> dict[str, str]:
        out = {"correlation_id": self.correlation_id, "traceparent": self.traceparent}
        if self.tenant_id is not None:
            out["tenant_id"] = str(self.tenant_id)
        if self.causation_id is not None:
            out["causation_id"] = self.causation_id
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Headers:
        tid = d.get("tenant_id")
        return cls(
            tenant_id=UUID(str(tid)) if tid else None,
            correlation_id=str(d.get("correlation_id") or uuid.uuid4()),
            causation_id=str(d["causation_id"]) if d.get("causation_id") else None,
            traceparent=str(d.get("traceparent") or new_traceparent()),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Envelope:
    message_id: UUID
    name: str
    kind: str  # "event" | "command"
    payload: dict[str, Any]
    headers: Headers
    target: str | None = None  # one consumer only (commands, replays); None: every subscriber
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        return orjson.dumps(self.payload)

    def retarget(self, target: str | None) -> Envelope:
        return replace(self, target=target)


class MessageContext:
    """What a handler knows about the message it handles: its id, name, headers, consumer.

    A message delivered by the relay or the bus has them all at once. For an in-process
    ``send`` they are derived from the sender's context only when a handler (or a message it
    publishes) asks for them: most command handlers never look, and building a message id,
    a trace span and the headers for every call was most of ``send``'s cost."""

    __slots__ = ("_headers", "_message_id", "_tenant_id", "consumer", "name")

    def __init__(
        self,
        message_id: UUID | None,
        name: str,
        headers: Headers | None,
        consumer: str,
        *,
        tenant_id: UUID | None = None,
    ) -> None:
        self._message_id = message_id
        self.name = name
        self._headers = headers
        self.consumer = consumer
        self._tenant_id = tenant_id

    @classmethod
    def local(cls, name: str, consumer: str, tenant_id: UUID | None) -> MessageContext:
        """The context of an in-process ``send``: ids and headers made on first use, caused
        by the message being handled now (if any), like a message published now."""
        ctx = cls(None, name, None, consumer, tenant_id=tenant_id)
        parent = current_message.get()
        if parent is not None:
            # Resolve now: the parent context is reset once its handler returns.
            ctx._headers = child_headers(tenant_id)
        return ctx

    @property
    def message_id(self) -> UUID:
        if self._message_id is None:
            self._message_id = fast_uuid4()
        return self._message_id

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._tenant_id, str(self.message_id), None, new_traceparent())
        return self._headers

    def __repr__(self) -> str:
        return f"MessageContext({self.name!r}, consumer={self.consumer!r})"


#: The message being handled (so publishing from a handler carries causation/correlation).
current_message: ContextVar[MessageContext | None] = ContextVar("tenantry_message", default=None)


def child_headers(tenant_id: UUID | None) -> Headers:
    """Headers of a message published now: caused by the message being handled, if any, and
    in the current trace (the HTTP request's or the consumed message's: its ``traceparent``
    names the current span as the parent), else in the parent message's, else a new one."""
    parent = current_message.get()
    traceparent = tracing.current_traceparent()
    if parent is None:
        return Headers(tenant_id, str(fast_uuid4()), None, traceparent or new_traceparent())
    return Headers(
        tenant_id,
        parent.headers.correlation_id,
        str(parent.message_id),
        traceparent or new_traceparent(trace_id_of(parent.headers.traceparent)),
    )


def encode(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = message.model_dump(mode="json")
    return data


def decode(message_type: type[Any], payload: dict[str, Any] | bytes) -> Any:
    if isinstance(payload, bytes | bytearray | memoryview):
        payload = orjson.loads(payload)
    return message_type.model_validate(payload)


Roundtrip = Callable[[Any], Any]
_ROUNDTRIPS: dict[type[Any], Roundtrip] = {}


def roundtrip_for(message_type: type[Any]) -> Roundtrip:
    """``message -> message`` through JSON bytes, like the bus, with the type's compiled
    pydantic-core serializer and validator (no intermediate dict), cached per type."""
    fn = _ROUNDTRIPS.get(message_type)
    if fn is None:
        to_json = message_type.__pydantic_serializer__.to_json
        from_json = message_type.__pydantic_validator__.validate_json

        def fn(message: Any) -> Any:
            return from_json(to_json(message))

        _ROUNDTRIPS[message_type] = fn
    return fn


def wire_roundtrip(message_type: type[Any], message: Any) -> Any:
    """Exactly what the bus does to a message: to JSON bytes and back."""
    return roundtrip_for(message_type)(message)
