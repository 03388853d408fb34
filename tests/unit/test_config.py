from __future__ import annotations

from pathlib import Path

import pytest

from tenantry.capabilities.export.settings import ExportSettings
from tenantry.kernel.config import load_settings
from tenantry.kernel.errors import ConfigError


def test_defaults_need_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("TENANTRY_CONFIG", raising=False)
    s = load_settings()
    assert s.database.url is None
    assert s.http.port == 8000


def test_toml_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text('[http]\nport = 9001\n[database]\npool_max = 7\n[exports]\nstorage = "local"\n')
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("TENANTRY_DATABASE__POOL_MAX", "9")
    s = load_settings(cfg)
    assert s.http.port == 9001
    assert s.database.url == "postgresql://u@h/db"
    assert s.database.pool_max == 9  # environment wins over the file
    assert s.section("exports", ExportSettings).storage == "local"


def test_every_bad_value_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[http]\nport = 70000\n[database]\nurl = "mysql://x"\napp_user = "Bad-Name"\n'
        '[auth]\nalgorithm = "HS256"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    msg = str(info.value)
    for key in ("[http] port", "[database] url", "[database] app_user", "[auth] algorithm"):
        assert f"{cfg} {key}:" in msg


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[http\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
