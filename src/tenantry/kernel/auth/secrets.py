"""The platform secret: one key, from ``[security] secret_key`` or generated once in the
platform database, from which each use derives its own key (``derive("purpose")``).

Keys are derived with HMAC-SHA256(secret, purpose), so a key leaked from one use (say, cursor
signing) says nothing about another. Rotating the secret invalidates what was signed with it
(for cursors: clients start a list again).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from tenantry.kernel.auth.sql import INSERT_PLATFORM_SECRET, SELECT_PLATFORM_SECRET
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.privileged import admin_connection

SECRET_NAME = "secret_key"  # noqa: S105 - the row name, not a secret


class PlatformSecrets:
    def __init__(self, db: Database, configured: str | None) -> None:
        self.db = db
        self._secret: bytes | None = configured.encode() if configured else None
        self._derived: dict[str, bytes] = {}

    async def ensure(self) -> bool:
        """Generate the secret in the database if none is configured or stored (migrate)."""
        if self._secret is not None:
            return False
        async with admin_connection(self.db) as conn:
            status: str = await conn.execute(
                INSERT_PLATFORM_SECRET, SECRET_NAME, secrets.token_bytes(32)
            )
        return status.endswith(" 1")

    async def secret(self) -> bytes:
        if self._secret is None:
            async with self.db.platform_unit_of_work() as uow:
                value = await uow.fetchval(SELECT_PLATFORM_SECRET, SECRET_NAME)
            if not isinstance(value, bytes):
                raise RuntimeError("no platform secret: run `tenantry migrate` (it creates one)")
            self._secret = value
        return self._secret

    async def derive(self, purpose: str) -> bytes:
        key = self._derived.get(purpose)
        if key is None:
            key = hmac.new(await self.secret(), purpose.encode(), hashlib.sha256).digest()
            self._derived[purpose] = key
        return key
