"""Unpadded base64url for signed tokens (download links, cursors), decoded strictly.

Python's decoder is lenient: it drops characters outside the alphabet and ignores the unused
low bits of the last character, so several texts decode to the same bytes. A signed token
must have one spelling, or a changed token still verifies (a download link whose MAC's last
two characters were replaced passed about once in a thousand). ``decode`` accepts only the
text ``encode`` gives for the bytes; anything else is ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode(text: str) -> bytes:
    """The bytes of ``text`` if it is their canonical encoding; ValueError otherwise."""
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url: {exc}") from None
    if encode(data) != text:
        raise ValueError("not the canonical base64url spelling")
    return data
