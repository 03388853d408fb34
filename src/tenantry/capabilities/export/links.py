"""Signed, expiring download links: HMAC-SHA256 over (tenant, export, expiry).

A token is ``base64url(tenant_id.export_id.expires) "." base64url(hmac)``. It is checked in
constant time; it names its tenant and export, so it cannot open another export (the path id
must match) nor be used by another tenant's caller.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from uuid import UUID

from tenantry.kernel import b64
from tenantry.kernel.errors import Forbidden, ProblemError


class InvalidLink(Forbidden):
    type_slug, title = "invalid-download-link", "Invalid download link"


class ExpiredLink(ProblemError):
    status, type_slug, title = 410, "download-link-expired", "Download link expired"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return b64.decode(text)  # strict: one spelling per token (kernel/b64)


def sign(key: bytes, tenant_id: UUID, export_id: UUID, expires: int) -> str:
    payload = f"{tenant_id}.{export_id}.{expires}".encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(key: bytes, token: str, export_id: UUID, now: float | None = None) -> UUID:
    """The tenant the link was issued to; InvalidLink (403) or ExpiredLink (410) otherwise."""
    try:
        p64, m64 = token.split(".")
        payload, mac = _unb64(p64), _unb64(m64)
        tid, eid, exp = payload.decode().split(".")
        tenant_id, linked, expires = UUID(tid), UUID(eid), int(exp)
    except (ValueError, UnicodeDecodeError):
        raise InvalidLink("the download link is malformed") from None
    good = hmac.new(key, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(good, mac):
        raise InvalidLink("the download link's signature does not match")
    if linked != export_id:
        raise InvalidLink("the download link is for another export")
    if expires < (now if now is not None else time.time()):
        raise ExpiredLink("the download link has expired; ask for the export again for a new one")
    return tenant_id
