"""Opaque, HMAC-signed cursors.

A cursor is ``base64url(payload) "." base64url(mac)``, the payload a small JSON object
(``{"q": query fingerprint, "k": [sort values..., id]}``) and the MAC an HMAC-SHA256 over a
*scope* (the list's name and the tenant) and the payload, truncated to 128 bits. A client can
read a cursor but not forge or alter one, nor replay it on another list, tenant, sort or
filter: every such attempt is a 404 ``invalid-cursor`` (the page it names does not exist, as
an id from another tenant does not: the same answer a fuzzer, a schema and a client expect
for a reference to nothing; no schema can say which strings carry a valid MAC).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from tenantry.kernel import b64
from tenantry.kernel.errors import NotFound

MAX_CURSOR = 4096
_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return b64.decode(text)  # strict: one spelling per token (kernel/b64)


class InvalidCursor(NotFound):
    type_slug, title = "invalid-cursor", "Invalid cursor"


def invalid(reason: str) -> InvalidCursor:
    return InvalidCursor(
        f"invalid cursor: {reason}", errors=[{"field": "cursor", "message": reason}]
    )


class CursorSigner:
    """Signs and verifies cursor payloads with a key derived for this purpose only."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a cursor key needs at least 16 bytes")
        self._key = key

    def _mac(self, scope: str, payload: bytes) -> bytes:
        msg = scope.encode() + b"\x00" + payload
        return hmac.new(self._key, msg, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, scope: str, data: dict[str, Any]) -> str:
        payload = orjson.dumps(data)
        return f"{_b64(payload)}.{_b64(self._mac(scope, payload))}"

    def verify(self, scope: str, cursor: str) -> dict[str, Any]:
        """The payload of a cursor this signer made for ``scope``; 404 otherwise."""
        if len(cursor) > MAX_CURSOR:
            raise invalid("too long")
        body, dot, mac = cursor.partition(".")
        if not dot:
            raise invalid("malformed")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (ValueError, binascii.Error):
            raise invalid("malformed") from None
        if not hmac.compare_digest(given, self._mac(scope, payload)):
            raise invalid("signature mismatch (tampered, or from another list or tenant)")
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise invalid("malformed") from None
        if not isinstance(data, dict):
            raise invalid("malformed")
        return data
