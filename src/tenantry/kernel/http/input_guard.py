"""Refuse, once at the edge, values that no part of the platform can store or compute with.

Every route validates its own fields (pydantic), but some values pass any schema and still
break below it: a NUL character (PostgreSQL ``text`` and ``jsonb`` cannot hold one), a lone
surrogate (not encodable as UTF-8), an integer beyond 64 bits or a number beyond the double
range (our JSON codec, orjson, cannot write them; ``json`` turns ``1e400`` into ``inf``; so
that one rule holds for every number, any number outside -2^63..2^63-1 is refused), and
a date-time whose offset puts it outside years 1-9999 once converted to UTC. Checking them in
each route would miss the next route, so ``InputGuard`` checks the path, the query string and
JSON / form bodies of every request before any route runs and answers 422 ``invalid-value``
naming the field (401 ``invalid_request`` on credential endpoints such as the token endpoint,
which never say more than "bad credentials").

Why our own code: no ASGI library checks "can PostgreSQL and orjson hold this value"; the
rules are ours. It costs little: a body is walked only when a few byte-level tests find a hint
of such a value (``\\u`` escapes, 19+ digit runs, 2-digit exponents, NaN/Infinity, years 0001
or 9999); otherwise the request passes untouched (docs/performance.md, "input guard").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.kernel.errors import InvalidValue, ProblemError, Unauthorized
from tenantry.kernel.http.problems import problem_response

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: Byte-level hints that a JSON body may hold a value ``check_value`` refuses: any ``\\u``
#: escape (NUL and surrogates can only come as escapes: JSON forbids raw control characters
#: in strings), the non-standard constants ``json`` accepts, the years where an offset can
#: leave datetime's range; and two number shapes, tested on the body mapped by ``_SHAPE``
#: (digits to ``0``, ``e``/``E`` to ``e``, signs to ``+``, what can end a JSON number
#: (``,`` ``}`` ``]`` and whitespace) to a space, anything else to ``x``): 19 or more digits in
#: a row, or a number written with an exponent (``_EXPONENT``: a digit, ``e``, digits, then
#: the end of the number). Any exponent, not only a large one: ``100000000000e9`` is 1e20
#: with a one-digit exponent. A UUID or a hex string never ends a number there (``3e45`` in
#: ``5b3e4567-...`` is followed by ``6``, a letter, ``-`` or ``"``), so bodies of ids are not
#: parsed for nothing. Substring tests, one ``bytes.translate`` and one search with a literal
#: prefix: an order of magnitude cheaper than a regex with these alternatives over the raw
#: body (bench/input_guard.py; docs/performance.md, "Measurements behind the code").
_JSON_HINTS = (b"\\u", b"NaN", b"Infinity", b"0001-", b"9999-")
_NUMBER_END = frozenset(b",}] \t\r\n")
_SHAPE = bytes(
    ord("0")
    if 48 <= b <= 57  # ASCII digits only: a JSON number has no others
    else ord("e")
    if b in b"eE"
    else ord("+")
    if b in b"+-"
    else 32
    if b in _NUMBER_END
    else ord("x")
    for b in range(256)
)
_LONG_DIGITS = b"0" * 19
_EXPONENT = re.compile(rb"0e\+?0+ ")


def _json_hinted(body: bytes) -> bool:
    if any(h in body for h in _JSON_HINTS):
        return True
    shape = body.translate(_SHAPE) + b" "  # the body's end also ends a number
    return _LONG_DIGITS in shape or (b"0e" in shape and _EXPONENT.search(shape) is not None)


#: The same for a query string or form body (percent-encoded NUL, the boundary years).
_QUERY_HINT = re.compile(rb"%00|\x00|0001-|9999-")
#: A string that may be a date-time at the edge of the range (checked by parsing it).
_EDGE_DATETIME = re.compile(r"^(0001|9999)-\d\d-\d\d[Tt ]\d\d:\d\d")
_JSON_TYPES = ("application/json",)
_FORM_TYPE = "application/x-www-form-urlencoded"


class BadValue(ValueError):
    """A value the platform cannot hold: ``where`` names the field, ``reason`` says why."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


def _check_string(value: str, where: str) -> None:
    if "\x00" in value:
        raise BadValue(where, "contains a NUL character (U+0000), which cannot be stored")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadValue(where, "contains a lone surrogate; send valid UTF-8 text") from None
    if len(value) >= 16 and _EDGE_DATETIME.match(value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return  # not a date-time: the route's own validation decides
        if parsed.tzinfo is not None:
            try:
                parsed.astimezone(UTC)
            except OverflowError:
                raise BadValue(
                    where, "date-time is outside years 1-9999 once converted to UTC"
                ) from None


def check_value(value: Any, where: str = "") -> None:
    """Raise ``BadValue`` for the first value in ``value`` (recursively) the platform cannot
    hold; ``where`` is the path of ``value`` in the request, e.g. ``metadata.note``."""
    if isinstance(value, str):
        _check_string(value, where or "value")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise BadValue(
                where or "value",
                "integer is outside the 64-bit range (-2^63..2^63-1); send it as a string",
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadValue(where or "value", "number is not finite (beyond ±1.8e308)")
        if not INT64_MIN <= value <= INT64_MAX:
            raise BadValue(
                where or "value",
                "number is outside -2^63..2^63-1 (about ±9.2e18); send it as a string",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str):
                _check_string(key, f"{path} (key)")
            check_value(item, path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_value(item, f"{where}[{i}]")


def _reject_constant(name: str) -> Any:
    raise BadValue("body", f"{name} is not a JSON number")


def check_json_body(body: bytes) -> None:
    """Raise ``BadValue`` naming the field when ``body`` (JSON) holds a value the platform
    cannot hold. Malformed JSON is left to the route (400 ``malformed-body``)."""
    if not _json_hinted(body):
        return
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except BadValue:
        raise
    except ValueError:  # not JSON, or not UTF-8: the route answers 400
        return
    check_value(doc, "")


def check_query(raw: bytes, where: str) -> None:
    """The same for a query string or an ``x-www-form-urlencoded`` body."""
    if not _QUERY_HINT.search(raw):
        return
    # Decoded as Starlette does: percent-escapes as UTF-8, undecodable bytes replaced.
    for name, text in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="replace"):
        _check_string(name, f"{where} {name!r} (name)")
        _check_string(text, f"{name}")


def _media_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: str = value.split(b";", 1)[0].strip().lower().decode("latin-1")
            return media
    return ""


class InputGuard:
    """Pure ASGI middleware applying ``check_value`` to the path, query and body.

    ``credential_paths``: paths (without ``root_path``) answered 401 ``invalid_request``
    instead of 422, so an unauthenticated endpoint never says which field was wrong."""

    def __init__(
        self, app: ASGIApp, credential_paths: Callable[[], Collection[str]] = frozenset
    ) -> None:
        self.app = app
        self.credential_paths = credential_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            path: str = scope["path"]
            if "\x00" in path:
                raise BadValue("path", "contains a NUL character (U+0000)")
            check_query(scope.get("query_string", b""), "query")
            media = _media_type(scope)
            is_json = media in _JSON_TYPES or media.endswith("+json")
            if is_json or media == _FORM_TYPE:
                body = await _read_body(receive)
                if is_json:
                    check_json_body(body)
                else:
                    check_query(body, "form")
                receive = _replay(body, receive)
        except BadValue as exc:
            await self._refuse(scope, receive, send, exc)
            return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: BadValue) -> None:
        state = scope.get("state", {})
        rid = state.get("request_id") if isinstance(state, dict) else None
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        err: ProblemError
        if path in self.credential_paths():
            err = Unauthorized(
                "the request holds a value that cannot be valid credentials",
                error="invalid_request",
            )
        else:
            err = InvalidValue(
                f"{exc.where}: {exc.reason}", errors=[{"field": exc.where, "message": exc.reason}]
            )
        response = problem_response(
            err.status,
            err.type_slug,
            err.title,
            err.detail,
            request_id=str(rid) if rid else None,
            errors=err.errors,
            headers=err.headers,
            extra=err.extra,
        )
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # a disconnect: nothing more will come
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
