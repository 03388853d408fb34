"""Settings: one TOML file plus environment variables, typed and validated at start.

Precedence (highest first): explicit overrides, environment (``TENANTRY_SECTION__KEY``, and
``DATABASE_URL`` for ``database.url``), the TOML file (``--config`` or ``TENANTRY_CONFIG``),
defaults. ``load_settings`` turns every validation problem into one ``ConfigError`` whose
message names each bad key, so an operator fixes them all in one pass.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tenantry.kernel.errors import ConfigError
from tenantry.kernel.observability.settings import ObservabilitySettings, SloSettings

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _check_ident(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError("must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63 chars)")
    return value


class ServerSettings(BaseModel):
    """A further PostgreSQL server that can hold database-mode tenants."""

    url: str

    @field_validator("url")
    @classmethod
    def _dsn(cls, v: str) -> str:
        if not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v


class DatabaseSettings(BaseModel):
    url: str | None = Field(
        default=None,
        description="Owner/admin DSN. Unset: an embedded PostgreSQL is started under embedded_dir.",
    )
    app_user: str = "tenantry_app"
    app_password: str = "tenantry_app"  # noqa: S105 - local default; set it in production
    owner_role: str = "tenantry_owner"
    pool_min: int = Field(default=1, ge=0, le=1000)
    pool_max: int = Field(default=20, ge=1, le=1000)
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    lock_timeout_ms: int = Field(default=5_000, ge=1)
    embedded_dir: Path = Path(".tenantry/pgdata")
    servers: dict[str, ServerSettings] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _dsn(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("app_user", "owner_role")
    @classmethod
    def _ident(cls, v: str) -> str:
        return _check_ident(v)

    @field_validator("servers")
    @classmethod
    def _server_names(cls, v: dict[str, ServerSettings]) -> dict[str, ServerSettings]:
        for name in v:
            _check_ident(name)
        if "default" in v:
            raise ValueError("'default' is the main server (database.url); pick another name")
        return v


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)


class AuthSettings(BaseModel):
    issuer: str = "tenantry"
    audience: str = "tenantry-api"
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    algorithm: Literal["EdDSA", "RS256"] = "EdDSA"
    leeway_s: int = Field(default=5, ge=0, le=300)
    #: How long a "this user/client is still active" answer is reused on a process. Changes
    #: reach every process at once by NOTIFY; this bounds staleness if one is missed.
    principal_status_ttl_s: float = Field(default=5.0, ge=0, le=300)


class TenancySettings(BaseModel):
    default_plan: str = "free"
    #: Members of this tenant may hold ``platform:admin`` (operators of the whole platform).
    operator_tenant: str = "operator"
    catalog_ttl_s: float = Field(default=5.0, ge=0, le=3600)


class SecuritySettings(BaseModel):
    #: Signs pagination cursors (and other short-lived tokens, each with a derived key).
    #: Unset: a random secret is generated once by ``tenantry migrate`` and kept in the
    #: platform database, so every process of the deployment agrees.
    secret_key: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _long_enough(cls, data: Any) -> Any:
        # Checked on the whole table so that the error message never echoes the secret.
        if isinstance(data, dict):
            key = data.get("secret_key")
            if isinstance(key, SecretStr):
                key = key.get_secret_value()
            if key is not None and (not isinstance(key, str) or len(key) < 32):
                raise ValueError("secret_key must be a string of at least 32 characters")
        return data


class ModulesSettings(BaseModel):
    disabled: list[str] = Field(default_factory=list)


class LoggingSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: ``json`` (one object per line) or ``console`` (human-readable, for dev).
    format: Literal["json", "console"] = "json"


class Settings(BaseSettings):
    """Every setting of the platform. Modules read their own table via ``extra``."""

    model_config = SettingsConfigDict(
        env_prefix="TENANTRY_",
        env_nested_delimiter="__",
        extra="allow",
        validate_default=True,
    )

    environment: str = "development"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tenancy: TenancySettings = Field(default_factory=TenancySettings)
    modules: ModulesSettings = Field(default_factory=ModulesSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    slo: SloSettings = Field(default_factory=SloSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file is merged into init kwargs by load_settings (so its path is a runtime
        # argument); environment variables still win over it.
        return (env_settings, init_settings)

    def module_settings(self, name: str) -> dict[str, Any]:
        extra = self.model_extra or {}
        value = extra.get(name, {})
        return dict(value) if isinstance(value, dict) else {}


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  - {loc}: {err['msg']}{shown}")
    return "\n".join(lines)


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any) and the environment; raise ConfigError naming bad values."""
    path_str = str(config_path) if config_path else os.environ.get("TENANTRY_CONFIG")
    data: dict[str, Any] = {}
    source = "defaults + environment"
    if path_str:
        path = Path(path_str)
        if not path.is_file():
            raise ConfigError(f"configuration file not found: {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
        source = str(path)
    env_url = os.environ.get("DATABASE_URL")
    if env_url and "TENANTRY_DATABASE__URL" not in os.environ:
        data.setdefault("database", {})
        data["database"] = {**data["database"], "url": env_url}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
