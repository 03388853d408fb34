"""Signing keys kept in the platform database; JWKS; rotation without downtime.

The newest non-retired key signs. ``rotate`` adds a key and retires the previous one: a
retired key no longer signs but still verifies until every token it signed has expired
(retired_at + access-token TTL + leeway), so rotation never logs anyone out. Verification
keys are cached in-process; an unknown ``kid`` triggers one reload (at most once a second)
so a key rotated by another process is picked up.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from tenantry.kernel.auth import sql as q
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.tenancy.audit import PlatformAudit, record


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private_key: Any
    public_key: Any
    public_jwk: dict[str, Any]
    retired: bool


def generate(alg: str) -> tuple[str, str, dict[str, Any]]:
    """A new key pair: (kid, private PEM, public JWK)."""
    private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        jwk = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    kid = secrets.token_urlsafe(12)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return kid, pem, jwk


class Keyring:
    def __init__(self, db: Database, grace_s: int, audit: PlatformAudit) -> None:
        self.db = db
        self.grace_s = grace_s
        #: Opens the rotation's unit of work, recorded in the operator tenant's log.
        self.audit = audit
        self._keys: dict[str, SigningKey] = {}
        self._signing: SigningKey | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        async with self.db.platform_unit_of_work() as uow:
            rows = await uow.fetch(q.SELECT_KEYS, float(self.grace_s))
        keys: dict[str, SigningKey] = {}
        signing = None
        for r in rows:
            private = serialization.load_pem_private_key(r["private_pem"].encode(), None)
            key = SigningKey(
                r["kid"],
                r["alg"],
                private,
                private.public_key(),
                r["public_jwk"],
                r["retired_at"] is not None,
            )
            keys[key.kid] = key
            if signing is None and not key.retired:
                signing = key
        self._keys, self._signing, self._loaded_at = keys, signing, time.monotonic()

    async def signing_key(self) -> SigningKey:
        if self._signing is None:
            await self.load()
        if self._signing is None:
            raise RuntimeError("no signing key: run `tenantry migrate` (it creates the first key)")
        return self._signing

    async def verification_key(self, kid: str) -> SigningKey | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at > 1.0:
            async with self._lock:
                if kid not in self._keys and time.monotonic() - self._loaded_at > 1.0:
                    await self.load()
            key = self._keys.get(kid)
        return key

    def knows(self, kid: str) -> bool:
        """Whether ``kid`` is a currently loaded verification key (no I/O)."""
        return kid in self._keys

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk for k in self._keys.values()]}

    async def ensure_key(self, alg: str) -> bool:
        """Create the first signing key if none is active; True if one was made."""
        async with admin_connection(self.db) as conn, conn.transaction():
            await conn.execute(q.LOCK)
            if await conn.fetchval(q.HAS_ACTIVE):
                return False
            kid, pem, jwk = generate(alg)
            await conn.execute(q.INSERT_KEY, kid, alg, pem, jwk)
        return True

    async def rotate(self, alg: str) -> str:
        """Add a new signing key; the previous one keeps verifying until its tokens expire.

        Audited as ``keys.rotated`` in the operator tenant's log (a platform-wide change,
        kernel/tenancy/audit), in the transaction of the rotation: the application role runs
        ``tenantry.rotate_signing_key`` (an owner function: the app role may only read the
        keys) in the unit of work that holds the record. The record names the new kid, its
        algorithm and the kids retired, never key material."""
        kid, pem, jwk = generate(alg)
        async with self.audit.platform_wide() as uow:
            retired = list(await uow.fetchval(q.ROTATE, kid, alg, pem, jwk))
            record(
                uow,
                "keys.rotated",
                f"signing_key:{kid}",
                before={"signing": retired},
                after={"signing": [kid], "alg": alg},
            )
        await self.load()
        return kid


def unverified_header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = jwt.get_unverified_header(token)
    return header
