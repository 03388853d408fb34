"""Webhook targets checked where it matters: the address the connection goes to.

``TargetGuard.vet(url)`` parses the URL (domain rules), resolves the name and checks every
address it resolves to; ``pinned(url)`` does the same at delivery and returns the request to
send to the vetted address itself (the URL's host replaced by the IP, the original ``Host``
header, and for https the original name as TLS SNI and for certificate checks: httpcore's
``sni_hostname`` extension), so a name that resolves to a public address at the check and to
``127.0.0.1`` a moment later (DNS rebinding) cannot redirect the request. Redirects are not
followed (the sender's client), for the same reason.

``allow_private`` (``notifications.allow_private_targets``, off by default) lets development
and test set-ups deliver to local receivers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from tenantry_notifications.domain.targets import (
    IPAddress,
    Target,
    TargetRefused,
    check_address,
    parse_target,
)


@dataclass(frozen=True, slots=True)
class PinnedRequest:
    url: str
    headers: dict[str, str]
    extensions: dict[str, str] = field(default_factory=dict)


class TargetGuard:
    def __init__(self, allow_private: bool = False) -> None:
        self.allow_private = allow_private

    async def resolve(self, target: Target) -> list[IPAddress]:
        if target.literal is not None:
            return [target.literal]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise TargetRefused(f"{target.host!r} does not resolve ({exc})") from None
        out: list[IPAddress] = []
        for *_, sockaddr in infos:
            addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if addr not in out:
                out.append(addr)
        return out

    async def vet(self, url: str) -> Target:
        """Refuse (TargetRefused) a URL that is, or resolves to, a non-public address, at
        registration. A name that does not resolve (yet) passes: every delivery resolves it
        and checks again."""
        if self.allow_private:
            return _parse_loose(url)
        target = parse_target(url)
        if target.literal is None:
            try:
                addresses = await self.resolve(target)
            except TargetRefused:
                return target  # unresolvable now; delivery resolves and checks again
            for addr in addresses:
                check_address(addr)
        return target

    async def pinned(self, url: str) -> PinnedRequest:
        """The request that goes to a vetted address of ``url`` (TargetRefused otherwise)."""
        target = _parse_loose(url) if self.allow_private else parse_target(url)
        addresses = await self.resolve(target)
        if not self.allow_private:
            for addr in addresses:  # every answer: the client must not pick a bad one
                check_address(addr)
        if target.literal is not None:
            return PinnedRequest(url, {})
        ip = addresses[0]
        parts = urlsplit(url)
        host_ip = f"[{ip}]" if ip.version == 6 else str(ip)
        netloc = f"{host_ip}:{parts.port}" if parts.port else host_ip
        host_header = f"{target.host}:{parts.port}" if parts.port else target.host
        pinned_url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        ext = {"sni_hostname": target.host} if target.scheme == "https" else {}
        return PinnedRequest(pinned_url, {"Host": host_header}, ext)


def _parse_loose(url: str) -> Target:
    """Shape only (http(s), a host): private targets allowed."""
    try:
        return parse_target(url)
    except TargetRefused as exc:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme.lower() not in ("http", "https") or not host:
            raise
        if parts.username is not None or parts.password is not None:
            raise TargetRefused(str(exc)) from None
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        scheme = parts.scheme.lower()
        return Target(scheme, host, parts.port or (443 if scheme == "https" else 80), literal)
