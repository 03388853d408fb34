"""The platform secret behind cursor signing: generated once by migrate, the same for every
process, or taken from ``[security] secret_key``; one derived key per purpose."""

from __future__ import annotations

import pytest

from tenantry.capabilities.pagination import CursorSigner
from tenantry.capabilities.pagination.http import CURSOR_KEY_PURPOSE
from tenantry.kernel.auth.secrets import PlatformSecrets
from tenantry.kernel.config import load_settings
from tenantry.kernel.db.privileged import fetch_admin
from tenantry.kernel.errors import ConfigError
from tenantry.kernel.platform import Platform


async def test_generated_once_and_shared_by_processes(platform: Platform) -> None:
    assert not await platform.secrets.ensure()  # prepare() made it already
    other_process = PlatformSecrets(platform.db, None)
    key = await platform.secrets.derive(CURSOR_KEY_PURPOSE)
    assert len(key) == 32
    assert await other_process.derive(CURSOR_KEY_PURPOSE) == key
    assert await platform.secrets.derive("another purpose") != key
    cursor = CursorSigner(key).sign("scope", {"k": [1]})
    assert CursorSigner(await other_process.derive(CURSOR_KEY_PURPOSE)).verify("scope", cursor) == {
        "k": [1]
    }
    rows = await fetch_admin(platform.db, "SELECT count(*) FROM tenantry.platform_secrets")
    assert rows[0][0] == 1


async def test_configured_secret_wins(platform: Platform) -> None:
    configured = PlatformSecrets(platform.db, "s" * 32)
    assert not await configured.ensure()
    assert await configured.derive("x") != await platform.secrets.derive("x")
    assert await configured.derive("x") == await PlatformSecrets(platform.db, "s" * 32).derive("x")


def test_short_configured_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="secret_key must be") as exc:
        load_settings(None, security={"secret_key": "too-short-secret"})
    assert "too-short-secret" not in str(exc.value)
    assert load_settings(None).security.secret_key is None
    settings = load_settings(None, security={"secret_key": "k" * 32})
    assert settings.security.secret_key is not None
    assert "k" * 32 not in repr(settings)
