"""Where a webhook may go: the rules against server-side request forgery (pure).

A tenant chooses its webhook URLs, and the platform's servers make the requests, from inside
the deployment's network. So a target must be a public address: not loopback, link-local
(``169.254.169.254``, the cloud metadata service), private (RFC 1918, ``100.64/10``),
unique-local (``fc00::/7``), unspecified (``0.0.0.0``, ``::``), multicast, reserved, or one
of those in disguise (IPv4-mapped IPv6 ``::ffff:127.0.0.1``, 6to4/NAT64 wrapping a private
address). Names are checked again after resolution, at registration and at every delivery
(DNS rebinding), by ``infrastructure/targets``. The standard library's ``ipaddress`` knows
the IANA special-purpose registries (``is_global``), so no table of ranges is kept here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Names that are internal whatever they resolve to (cloud metadata and local names).
FORBIDDEN_NAMES = ("localhost", "metadata.google.internal", "metadata", "instance-data")
FORBIDDEN_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(ValueError):
    """The URL may not be a webhook target; the message says why (safe to show)."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # lower-case, IPv6 without brackets
    port: int
    literal: IPAddress | None  # the host as written, when it is an IP address


def parse_target(url: str) -> Target:
    """The URL's scheme, host and port, or TargetRefused (not http(s), no host, user info,
    a bad port, a name that is always internal)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("the URL must be http:// or https://")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise TargetRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL must not carry a user name or password")
    if host in FORBIDDEN_NAMES or host.endswith(FORBIDDEN_SUFFIXES):
        raise TargetRefused(f"{host!r} is an internal name")
    literal = _literal(host)
    if literal is not None:
        check_address(literal)
    return Target(scheme, host, port or (443 if scheme == "https" else 80), literal)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # inet_aton's other spellings, which resolvers accept: 2130706433, 0x7f.1, 0177.0.0.1, 127.1
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_is_c_number(p) for p in parts):
        return None
    nums = [int(p, 0) if not (len(p) > 1 and p[0] == "0" and p[1] not in "xX") else int(p, 8)
            for p in parts]  # fmt: skip
    value = 0
    for i, n in enumerate(nums[:-1]):
        if n > 255:
            raise TargetRefused(f"{host!r} is not a valid address")
        value |= n << (24 - 8 * i)
    last_bits = 32 - 8 * (len(nums) - 1)
    if nums[-1] >= 1 << last_bits:
        raise TargetRefused(f"{host!r} is not a valid address")
    return ipaddress.IPv4Address(value | nums[-1])


def _is_c_number(part: str) -> bool:
    if not part:
        return False
    if part[:2].lower() == "0x":
        return len(part) > 2 and all(c in "0123456789abcdefABCDEF" for c in part[2:])
    return part.isdigit()


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be a webhook target, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            why = refusal(embedded)
            return f"{why} (inside {address})" if why else None
    for attr, what in (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address (cloud metadata lives there)"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, attr):
            return f"{address} is {what}"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def check_address(address: IPAddress) -> None:
    why = refusal(address)
    if why is not None:
        raise TargetRefused(why)
