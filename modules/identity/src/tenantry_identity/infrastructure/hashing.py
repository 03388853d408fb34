"""argon2id password hashing (pwdlib), off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


class Argon2PasswordHasher:
    def __init__(self, time_cost: int = 2, memory_cost: int = 19_456) -> None:
        # OWASP's argon2id minimum (19 MiB, t=2, p=1): a login costs tens of ms, not hundreds.
        self._ph = PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1),)
        )
        self._dummy = self._ph.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._ph.hash, password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        ok = await asyncio.to_thread(self._ph.verify, password, hashed or self._dummy)
        return bool(ok) and hashed is not None


def hash_client_secret(secret: str) -> str:
    """Client secrets are 256-bit random strings: SHA-256 is enough (no dictionary to fear)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def client_secret_matches(secret: str, stored: str | None) -> bool:
    return hmac.compare_digest(hash_client_secret(secret), stored or "0" * 64)
