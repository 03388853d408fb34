"""Issuing and verifying access tokens (JWT, EdDSA or RS256).

Verification trusts nothing in the token before the signature is checked: the algorithm is
taken from our key (never from the header, so ``alg: none`` and HS256-with-the-public-key
confusion cannot work), the ``kid`` must name one of our keys, and ``iss``, ``aud``, ``exp``,
``iat``, ``sub``, ``tenant_id`` and ``jti`` are required.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import jwt

from tenantry.kernel.auth.keys import Keyring
from tenantry.kernel.config import AuthSettings
from tenantry.kernel.tenancy.context import Principal


class TokenError(Exception):
    """The token is not acceptable; the message is safe to show."""


REQUIRED = ["exp", "iat", "iss", "aud", "sub", "tenant_id", "jti"]


#: Verified tokens kept in memory (bounded): the signature check and claim validation run
#: once per token, not once per request. A hit still re-checks expiry; the tenant's status
#: is checked per request by the middleware, and a key retired past its grace period can
#: only have signed tokens that have expired already.
VERIFIED_CACHE_SIZE = 10_000


class TokenService:
    def __init__(self, keyring: Keyring, settings: AuthSettings) -> None:
        self.keyring = keyring
        self.settings = settings
        self._verified: dict[str, tuple[Principal, float, str]] = {}

    async def issue(
        self,
        *,
        subject: str,
        tenant_id: uuid.UUID,
        roles: list[str],
        scopes: list[str],
        kind: str = "user",
    ) -> tuple[str, int]:
        key = await self.keyring.signing_key()
        now = int(time.time())
        ttl = self.settings.access_token_ttl_s
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
            "sub": subject,
            "tenant_id": str(tenant_id),
            "roles": sorted(roles),
            "scope": " ".join(sorted(scopes)),
            "kind": kind,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(12),
        }
        token = jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid})
        return token, ttl

    async def verify(self, token: str) -> Principal:
        hit = self._verified.get(token)
        if hit is not None:
            principal, exp, kid = hit
            if time.time() < exp + self.settings.leeway_s and self.keyring.knows(kid):
                return principal
            del self._verified[token]  # expired, or its key was withdrawn: verify afresh
        principal, exp, kid = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first (insertion order)
        self._verified[token] = (principal, exp, kid)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenError("token has no key id")
        key = await self.keyring.verification_key(kid)
        if key is None:
            raise TokenError("token signed by an unknown key")
        if header.get("alg") != key.alg:
            raise TokenError("token algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.alg],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        try:
            tenant_id = uuid.UUID(str(claims["tenant_id"]))
        except ValueError:
            raise TokenError("invalid token: bad tenant_id") from None
        roles = claims.get("roles") or []
        scope = claims.get("scope") or ""
        if not isinstance(roles, list) or not isinstance(scope, str):
            raise TokenError("invalid token: bad roles or scope")
        principal = Principal(
            subject=str(claims["sub"]),
            tenant_id=tenant_id,
            kind=str(claims.get("kind", "user")),
            roles=frozenset(str(r) for r in roles),
            scopes=frozenset(scope.split()),
            token_id=str(claims["jti"]),
        )
        return principal, float(claims["exp"]), kid
