"""A signed token has one spelling: another text for the same bytes is refused.

Python's base64 decoder ignores the unused low bits of the last character and drops
characters outside the alphabet, so a tampered download link (its MAC's last characters
replaced) verified whenever the replaced bits were unused: the export test failed about once
in a thousand runs. kernel/b64 decodes strictly; these tests change only such bits."""

from __future__ import annotations

import base64
import string
import uuid

import pytest

from tenantry.capabilities.export import links
from tenantry.capabilities.pagination.cursor import CursorSigner, InvalidCursor
from tenantry.kernel import b64

ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def respelled(text: str) -> str:
    """``text`` (base64url) with its last character replaced by one the lenient decoder
    reads as the same bytes."""
    pad = "=" * (-len(text) % 4)
    same = base64.urlsafe_b64decode(text + pad)
    for c in ALPHABET:
        other = text[:-1] + c
        if c != text[-1] and base64.urlsafe_b64decode(other + pad) == same:
            return other
    raise AssertionError(f"no other spelling for {text!r}")


def same_bytes_other_text(token: str) -> str:
    """A signed token (``payload.mac``) with its MAC respelled."""
    payload, _, mac = token.rpartition(".")
    return f"{payload}.{respelled(mac)}"


def test_decode_refuses_every_other_spelling() -> None:
    data = bytes(range(32))
    text = b64.encode(data)
    assert b64.decode(text) == data
    for bad in (respelled(text), text + "=", text[:5] + "!" + text[5:], "é"):
        with pytest.raises(ValueError, match="base64url"):
            b64.decode(bad)


def test_a_download_link_with_its_mac_respelled_is_refused() -> None:
    key, tenant, export = b"k" * 32, uuid.uuid4(), uuid.uuid4()
    token = links.sign(key, tenant, export, 2**40)
    assert links.verify(key, token, export) == tenant
    with pytest.raises(links.InvalidLink):
        links.verify(key, same_bytes_other_text(token), export)


def test_a_cursor_with_its_mac_respelled_is_refused() -> None:
    signer = CursorSigner(b"k" * 32)
    cursor = signer.sign("scope", {"after": [1, "x"]})
    assert signer.verify("scope", cursor) == {"after": [1, "x"]}
    with pytest.raises(InvalidCursor, match="malformed"):
        signer.verify("scope", same_bytes_other_text(cursor))
