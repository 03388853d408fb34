"""Signing keys kept in the platform database; JWKS; rotation without downtime.

The newest non-retired key signs. ``rotate`` adds a key and retires the previous one: a
retired key no longer signs but still verifies until every token it signed has expired
(retired_at + access-token TTL + leeway), so rotation never logs anyone out.

**Several processes.** Keys are cached in each process. A rotation (by any process: ``tenantry
keys rotate``, another server worker) sends ``NOTIFY tenantry_keys`` in its transaction; every
process that ``listen``s (``Platform.start``) re-reads the key set at once, so it signs with
the new key and publishes it in its JWKS. A missed notification (the LISTEN connection
re-opening delivers an "anything may have changed" one) is bounded by ``refresh_s``: the
signing key is re-read when it is older than that (5 s), on the token path only. An unknown
``kid`` also triggers a reload (at most once a second). Before this, a process kept signing
with the key it loaded at start, retired by a rotation elsewhere: its JWKS lacked the new
key, and once the old key passed its grace its tokens were refused everywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
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

CHANNEL = "tenantry_keys"
#: Seconds a loaded signing key is used before it is re-read (a missed NOTIFY's bound).
REFRESH_S = 5.0
_log = logging.getLogger(__name__)


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
        self.refresh_s = REFRESH_S
        self._keys: dict[str, SigningKey] = {}
        self._signing: SigningKey | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        #: A rotation was notified since the last load (or a NOTIFY may have been missed).
        self._stale = False
        self._listening = False
        self._reload: asyncio.Task[None] | None = None

    async def load(self) -> None:
        self._stale = False  # a NOTIFY arriving during the read marks it stale again
        try:
            async with self.db.platform_unit_of_work() as uow:
                rows = await uow.fetch(q.SELECT_KEYS, float(self.grace_s))
        except BaseException:
            self._stale = True
            raise
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

    def _outdated(self) -> bool:
        return (
            self._signing is None
            or self._stale
            or time.monotonic() - self._loaded_at > self.refresh_s
        )

    async def signing_key(self) -> SigningKey:
        if self._outdated():
            async with self._lock:
                if self._outdated():
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
            await uow.notify(CHANNEL, kid)  # every listening process re-reads, on commit
        await self.load()
        return kid

    # -- across processes -------------------------------------------------------------------
    def _on_notify(self, _conn: Any, _pid: int, _channel: str, _payload: object) -> None:
        """A rotation (payload: the new kid) or a re-opened LISTEN connection (empty): re-read
        the key set now, in the background; until then the next signing re-reads it."""
        self._stale = True
        if self._reload is None or self._reload.done():
            self._reload = asyncio.get_running_loop().create_task(self._reload_now())

    async def _reload_now(self) -> None:
        try:
            async with self._lock:
                if self._stale:
                    await self.load()
        except Exception as exc:  # the next signing_key retries (still stale)
            _log.warning("signing keys: reload after a rotation failed: %s", exc)

    async def listen(self) -> None:
        """Follow rotations made by other processes (``NOTIFY tenantry_keys``)."""
        if self._listening:
            return
        await self.db.listen(CHANNEL, self._on_notify)
        self._listening = True
        self._stale = True  # anything rotated before the subscription: re-read once
        await self._reload_now()

    async def close(self) -> None:
        if self._reload is not None:
            self._reload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload
            self._reload = None
        if self._listening:
            self._listening = False
            await self.db.unlisten(CHANNEL, self._on_notify)


def unverified_header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = jwt.get_unverified_header(token)
    return header
