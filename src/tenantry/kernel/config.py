"""Settings: one TOML file plus environment variables, typed and validated at start.

Precedence (highest first): explicit overrides, environment (``TENANTRY_SECTION__KEY``, and
``DATABASE_URL`` for ``database.url``), the TOML file (``--config`` or ``TENANTRY_CONFIG``),
defaults. ``load_settings`` turns every validation problem into one ``ConfigError`` whose
message names each bad key, so an operator fixes them all in one pass.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import json
import os
import re
import tomllib
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    RootModel,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
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

    model_config = ConfigDict(extra="forbid")

    #: Owner/admin DSN of the server (postgresql://...).
    url: str

    @field_validator("url")
    @classmethod
    def _dsn(cls, v: str) -> str:
        if not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="Owner/admin DSN. Unset: an embedded PostgreSQL is started under embedded_dir.",
    )
    #: Login role of the application: no SUPERUSER, no BYPASSRLS.
    app_user: str = "tenantry_app"
    #: Password of app_user (the default is for local use only).
    app_password: str = "tenantry_app"  # noqa: S105 - local default; set it in production
    #: Role that owns every object (NOLOGIN).
    owner_role: str = "tenantry_owner"
    #: Connections kept open per pool.
    pool_min: int = Field(default=1, ge=0, le=1000)
    #: Connections at most per pool.
    pool_max: int = Field(default=20, ge=1, le=1000)
    #: statement_timeout of app connections (0: none).
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    #: lock_timeout of migrations' DDL.
    lock_timeout_ms: int = Field(default=5_000, ge=1)
    #: Data folder of the embedded PostgreSQL (when url is unset).
    embedded_dir: Path = Path(".tenantry/pgdata")
    #: More PostgreSQL servers for database-mode tenants, by name.
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
    model_config = ConfigDict(extra="forbid")

    #: Bind address of tenantry serve.
    host: str = "127.0.0.1"
    #: Port of tenantry serve.
    port: int = Field(default=8000, ge=1, le=65535)
    #: HTTP worker processes of tenantry serve (``--workers`` overrides). Unset: one per CPU
    #: core this process may run on, but 1 with the per-process ``memory`` rate-limit backend;
    #: more than 1 needs a shared one (``ratelimit.backend = "redis"``).
    workers: int | None = Field(default=None, ge=1, le=64)
    #: Seconds a shutdown (SIGTERM) waits for requests in flight before cancelling them.
    graceful_timeout_s: int = Field(default=30, ge=0, le=3600)


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: iss of issued tokens.
    issuer: str = "tenantry"
    #: aud of issued tokens.
    audience: str = "tenantry-api"
    #: Lifetime of an access token.
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    #: Signing algorithm of tokens.
    algorithm: Literal["EdDSA", "RS256"] = "EdDSA"
    #: Clock skew tolerated when checking exp/nbf.
    leeway_s: int = Field(default=5, ge=0, le=300)
    #: How long a "this user/client is still active" answer is reused on a process. Changes
    #: reach every process at once by NOTIFY; this bounds staleness if one is missed.
    principal_status_ttl_s: float = Field(default=5.0, ge=0, le=300)


class TenancySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Plan of a new tenant when none is given.
    default_plan: str = "free"
    #: Members of this tenant may hold ``platform:admin`` (operators of the whole platform).
    operator_tenant: str = "operator"
    #: Tenant catalog entries reused this long per process (NOTIFY invalidates at once).
    catalog_ttl_s: float = Field(default=5.0, ge=0, le=3600)


class SecuritySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    model_config = ConfigDict(extra="forbid")

    #: Installed modules not to load (their tables are kept, unchecked).
    disabled: list[str] = Field(default_factory=list)


class LoggingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Lowest level logged.
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: ``json`` (one object per line) or ``console`` (human-readable, for dev).
    format: Literal["json", "console"] = "json"


class JobsSettings(BaseModel):
    """``[jobs]``: the job runner (kernel/jobs)."""

    model_config = ConfigDict(extra="forbid")

    #: ``tenantry serve`` also runs a job worker (the single-process default); set false
    #: when dedicated ``tenantry jobs worker`` processes run the jobs.
    in_process: bool = True
    #: Idle poll of every active tenant's store (NOTIFY wakes the worker early).
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    #: How often due cron schedules are fired.
    schedule_interval_s: float = Field(default=5.0, gt=0, le=3600)
    #: A job whose worker stops heart-beating is retried after this.
    lease_s: float = Field(default=30.0, ge=1, le=3600)
    #: Jobs one worker process runs at once.
    concurrency: int = Field(default=2, ge=1, le=64)
    #: Attempts before a job fails for good.
    max_attempts: int = Field(default=5, ge=1, le=100)
    #: Retry delay: base * 2^(attempt-1), capped by backoff_max_s.
    backoff_base_s: float = Field(default=2.0, ge=0, le=3600)
    #: Upper bound of the retry delay.
    backoff_max_s: float = Field(default=300.0, ge=0, le=86_400)


class MessagingSettings(BaseModel):
    """``[messaging]``: dispatcher, outbox relay, RabbitMQ bus, sagas (kernel/messaging)."""

    model_config = ConfigDict(extra="forbid")

    #: Encode/decode in-process messages exactly like the bus (turn off only for speed).
    serialize_inproc: bool = True
    #: ``tenantry serve`` runs the outbox relay in its own process (false: a ``tenantry
    #: worker`` process relays).
    relay_in_process: bool = True
    #: Idle poll of the outboxes (NOTIFY wakes the relay early).
    poll_interval_s: float = Field(default=2.0, gt=0, le=600)
    #: The relays of other processes are woken by one NOTIFY per database per this
    #: interval at most, for every tenant that committed outbox rows meanwhile (this
    #: process's relay is woken at once, without SQL).
    notify_interval_s: float = Field(default=0.005, ge=0, le=5)
    #: Messages one relay pass takes from a tenant's outbox.
    batch_size: int = Field(default=200, ge=1, le=10_000)
    #: Tenants delivered at once by one relay (each uses up to two pooled connections).
    relay_concurrency: int = Field(default=4, ge=1, le=64)
    #: Delivery attempts before a message is dead-lettered.
    max_attempts: int = Field(default=8, ge=1, le=100)
    #: Redelivery delay: base * 2^(attempt-1), capped by backoff_max_s.
    backoff_base_s: float = Field(default=0.5, gt=0)
    #: Upper bound of the redelivery delay.
    backoff_max_s: float = Field(default=300.0, gt=0)
    #: How long delivered outbox rows are kept.
    retention_s: float = Field(default=3600.0, ge=0)
    #: RabbitMQ URL (edges routed over ``bus`` in ``[dispatch]``).
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    #: Prefix of exchange and queue names (one per deployment; tests use a unique one).
    amqp_prefix: str = "tenantry"
    #: Unacknowledged bus messages per consumer.
    prefetch: int = Field(default=32, ge=1, le=10_000)
    #: Attempts of a bus consumer before the message is dead-lettered.
    consumer_attempts: int = Field(default=5, ge=1, le=100)
    #: A saga whose runner stopped beating this long ago is resumed by another process.
    saga_stale_s: float = Field(default=30.0, gt=0)
    #: This process (``serve``, ``worker``) resumes stale sagas: at start-up and then every
    #: ``saga_stale_s / 2``; claimed with SKIP LOCKED, so several processes may all do it.
    saga_resume: bool = True


#: ``[dispatch]``: ``"<owner> -> <consumer>" = "inproc" | "bus"`` per edge.
Transport = Literal["inproc", "bus"]

M = TypeVar("M", bound=BaseModel)


class Settings(BaseModel):
    """Every setting of the platform. The kernel's sections are the fields below; modules
    and capabilities declare theirs through the module contract (``Module.settings_model``,
    ``Module.settings_sections``) and read them typed with :meth:`section`. Build it with
    :func:`load_settings` (file + environment, every key checked)."""

    # Extra: the tables of module sections, kept raw; load_settings refuses unknown ones.
    model_config = ConfigDict(extra="allow", validate_default=True)

    #: Deployment name (``production``, ``staging``...), reported with errors and traces.
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
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    messaging: MessagingSettings = Field(default_factory=MessagingSettings)
    #: Transport per message edge ``"<owner> -> <consumer>"``: ``inproc`` (default) or ``bus``.
    dispatch: dict[str, Transport] = Field(default_factory=dict)

    _sections: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    def section(self, name: str, model: type[M]) -> M:
        """The typed ``[name]`` table of a module (validated by :func:`load_settings`; on a
        Settings built directly, validated here)."""
        cached = self._sections.get(name)
        if isinstance(cached, model):
            return cached
        raw = (self.model_extra or {}).get(name, {})
        try:
            value = model.model_validate(raw)
        except ValidationError as exc:
            problems = [_problem(err, (name,), {}, None) for err in exc.errors()]
            raise ConfigError(_summary(problems), problems) from None
        self._sections[name] = value
        return value


#: The kernel's sections: the fields of Settings (the one place they are registered).
KERNEL_SECTIONS: tuple[str, ...] = tuple(Settings.model_fields)
ENV_PREFIX = "TENANTRY_"
#: ``TENANTRY_*`` variables that are not settings: the config file, debug output, test hooks.
ENV_NOT_SETTINGS = frozenset({"TENANTRY_CONFIG", "TENANTRY_DEBUG"})
ENV_NOT_SETTINGS_PREFIXES = ("TENANTRY_TEST_",)

#: A module section: its model, or None for a disabled module's (kept, not validated).
SectionModels = Mapping[str, "type[BaseModel] | None"]


# -- where a value came from ----------------------------------------------------------------
@dataclass(frozen=True)
class _Origin:
    kind: Literal["file", "env", "override"]
    name: str  # file path, environment variable, or "" (overrides)
    path: tuple[str | int, ...]  # the key path the source set


def _loc_text(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(loc: tuple[str | int, ...], origin: _Origin | None) -> str:
    """``tenantry.toml [jobs] in_process``, ``TENANTRY_JOBS__IN_PROCESS``, ``jobs.in_process``."""
    if origin is None or origin.kind == "override":
        return _loc_text(loc)
    if origin.kind == "env":
        if tuple(loc[: len(origin.path)]) != origin.path:
            return f"{_loc_text(loc)} (in the table {origin.name} sets)"
        rest = loc[len(origin.path) :]
        return origin.name + (f" {_loc_text(rest)}" if rest else "")
    if len(loc) == 1:
        return f"{origin.name} {loc[0]}"
    return f"{origin.name} [{loc[0]}] {_loc_text(loc[1:])}"


def _origin_of(
    loc: tuple[str | int, ...], origins: Mapping[tuple[str | int, ...], _Origin]
) -> _Origin | None:
    for n in range(len(loc), 0, -1):
        found = origins.get(loc[:n])
        if found is not None:
            return found
    for n in range(len(loc), 0, -1):  # an error on a table: whatever set a key in it
        for path, found in origins.items():
            if path[:n] == loc[:n]:
                return found
    return None


# -- types of the settings tree -------------------------------------------------------------
_MISSING = object()


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> X, ``Annotated[X, ...]`` -> X, a RootModel -> its root type."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
            return tp
        if isinstance(tp, type) and issubclass(tp, RootModel):
            tp = tp.model_fields["root"].annotation
            continue
        return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _table_child(tp: Any, key: str) -> tuple[Any, Any]:
    """(type of ``key`` in the table of type ``tp``, its default or _MISSING); KeyError when
    the table has no such key, TypeError when ``tp`` is not a table."""
    tp = _unwrap(tp)
    if tp is Any:
        return Any, _MISSING
    if _is_model(tp):
        field = tp.model_fields.get(key)
        if field is None:
            raise KeyError(key)
        default = _MISSING if field.is_required() else field.get_default(call_default_factory=True)
        return field.annotation, default
    if get_origin(tp) in (dict, Mapping) or tp is dict:
        args = get_args(tp)
        return (args[1] if len(args) == 2 else Any), _MISSING
    raise TypeError(key)


def _is_complex(tp: Any) -> bool:
    tp = _unwrap(tp)
    if _is_model(tp):
        return True
    return get_origin(tp) in (list, tuple, set, frozenset, dict, Mapping) or tp in (
        list,
        dict,
        tuple,
        set,
    )


def _dump(tp: Any, value: Any) -> Any:
    return TypeAdapter(tp).dump_python(value)


def _suggest(key: str, tp: Any) -> str:
    tp = _unwrap(tp)
    names = list(tp.model_fields) if _is_model(tp) else []
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


# -- problems --------------------------------------------------------------------------------
_SECRETISH = ("password", "secret")


def _problem(
    err: Any,
    prefix: tuple[str | int, ...],
    origins: Mapping[tuple[str | int, ...], _Origin],
    root: Any,
) -> str:
    loc = (*prefix, *err["loc"])
    where = _where(loc, _origin_of(loc, origins))
    if err["type"] == "extra_forbidden":
        parent: Any = root
        try:
            for part in err["loc"][:-1]:
                if parent is None:
                    break
                if isinstance(parent, _Root):
                    parent = parent.child(str(part))[0]
                elif isinstance(part, int):
                    parent = get_args(_unwrap(parent))[0]
                else:
                    parent = _table_child(parent, str(part))[0]
        except (KeyError, TypeError, IndexError):
            parent = None
        if isinstance(parent, _Root):
            return f"{where}: unknown key{_close(str(loc[-1]), parent.names(), '')}"
        hint = _suggest(str(loc[-1]), parent) if parent is not None else ""
        return f"{where}: unknown key{hint}"
    value = err.get("input")
    secret = any(s in str(p) for p in loc for s in _SECRETISH)
    shown = "" if secret or isinstance(value, dict) else f" (got {value!r})"
    return f"{where}: {err['msg']}{shown}"


def _summary(problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return f"invalid configuration: {problems[0]}"
    return f"invalid configuration ({len(problems)} problems):\n" + "\n".join(
        f"  - {p}" for p in problems
    )


class _Root:
    """The top of the settings tree: the kernel sections and the modules' sections."""

    def __init__(self, sections: SectionModels) -> None:
        self.sections = sections

    def child(self, key: str) -> tuple[Any, Any]:
        field = Settings.model_fields.get(key)
        if field is not None:
            return field.annotation, field.get_default(call_default_factory=True)
        if key in self.sections:
            model = self.sections[key]
            if model is None:
                return Any, _MISSING
            default: Any = _MISSING
            if issubclass(model, RootModel):
                field = model.model_fields["root"]
                if not field.is_required():
                    default = field.get_default(call_default_factory=True)
            return model, default
        raise KeyError(key)

    def names(self) -> list[str]:
        return [*Settings.model_fields, *self.sections]


# -- reading the sources ---------------------------------------------------------------------
def _record(
    data: Any, path: tuple[str | int, ...], origin: _Origin, out: dict[Any, _Origin]
) -> None:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            _record(value, (*path, key), origin, out)
    else:
        out[path] = _Origin(origin.kind, origin.name, path)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_name_ok(name: str) -> bool:
    upper = name.upper()
    if not upper.startswith(ENV_PREFIX):
        return False
    return upper not in ENV_NOT_SETTINGS and not upper.startswith(ENV_NOT_SETTINGS_PREFIXES)


def _apply_env(
    environ: Mapping[str, str],
    root: _Root,
    data: dict[str, Any],
    origins: dict[Any, _Origin],
    problems: list[str],
) -> None:
    """Set ``TENANTRY_<SECTION>__<KEY>[__<KEY>...]`` into ``data`` (over the file)."""
    for name in sorted(environ):
        if not _env_name_ok(name):
            continue
        value = environ[name]
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            problems.append(f"{name}: not a setting (TENANTRY_<SECTION>__<KEY>)")
            continue
        # The types (and defaults) along the path first: nothing is set for a bad name.
        steps: list[tuple[Any, Any]] = []
        tp: Any = None
        problem = None
        for i, part in enumerate(parts):
            try:
                tp, default = root.child(part) if i == 0 else _table_child(tp, part)
            except KeyError:
                if i == 0:
                    problem = f"unknown section{_close(part, root.names(), '')}"
                else:
                    problem = f"unknown key{_suggest(part, tp)}"
                break
            except TypeError:
                problem = f"unknown key ({'.'.join(parts[:i])} is a value, not a table)"
                break
            steps.append((tp, default))
        if problem is not None:
            problems.append(f"{name}: {problem}")
            continue
        node: dict[str, Any] = data
        for part, (step_tp, default) in zip(parts[:-1], steps[:-1], strict=True):
            child = node.get(part, _MISSING)
            if not isinstance(child, dict):
                # A table the file does not set. A map of named entries (plans...) starts
                # from its default entries, so one variable changes one value of one entry.
                child = dict(_dump(_unwrap(step_tp), default)) if isinstance(default, dict) else {}
                node[part] = child
            node = child
        leaf: Any = value
        if _is_complex(tp):
            try:
                leaf = json.loads(value)
            except ValueError:
                problems.append(f"{name}: expected JSON ({_type_name(tp)}) (got {value!r})")
                continue
        node[parts[-1]] = leaf
        path = tuple(parts)
        for key in [k for k in origins if k[: len(path)] == path]:
            del origins[key]
        origins[path] = _Origin("env", name, path)


def _close(key: str, names: Sequence[str], default: str) -> str:
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else default


def _type_name(tp: Any) -> str:
    tp = _unwrap(tp)
    if _is_model(tp):
        return "a table"
    origin = get_origin(tp)
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set):
        return "a list"
    if origin in (dict, Mapping) or tp is dict:
        return "a table"
    return getattr(tp, "__name__", str(tp))


def installed_sections(disabled: Iterable[str] = ()) -> dict[str, type[BaseModel] | None]:
    """Every module section of the installed modules (entry points), from the module
    contract; a disabled module's sections are known but not validated (None)."""
    from tenantry.kernel.modules import declared_sections

    return declared_sections(disabled)


def load_settings(
    config_path: str | Path | None = None,
    *,
    sections: SectionModels | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read the TOML file (if any), the environment and ``overrides``; every key of every
    source is checked against the typed models (the kernel's and every installed module's,
    or ``sections``); ConfigError names each bad key and where it came from."""
    env = os.environ if environ is None else environ
    path_str = str(config_path) if config_path else env.get("TENANTRY_CONFIG")
    data: dict[str, Any] = {}
    origins: dict[Any, _Origin] = {}
    if path_str:
        path = Path(path_str)
        if not path.is_file():
            raise ConfigError(f"configuration file not found: {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
        _record(data, (), _Origin("file", str(path), ()), origins)
    env_url = env.get("DATABASE_URL")
    if env_url and "TENANTRY_DATABASE__URL" not in env:
        data["database"] = {**data.get("database", {}), "url": env_url}
        origins[("database", "url")] = _Origin("env", "DATABASE_URL", ("database", "url"))
    if sections is None:
        sections = installed_sections()
    root = _Root(sections)
    problems: list[str] = []
    _apply_env(env, root, data, origins, problems)
    if overrides:
        data = _merge(data, overrides)
        _record(overrides, (), _Origin("override", "", ()), origins)
    kernel: dict[str, Any] = {}
    modules: dict[str, Any] = {}
    for key, value in data.items():
        if key in Settings.model_fields:
            kernel[key] = value
        elif key in sections:
            modules[key] = value
        else:
            where = _where((key,), _origin_of((key,), origins))
            what = "section" if isinstance(value, dict) else "key"
            problems.append(f"{where}: unknown {what}{_close(key, root.names(), '')}")
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(kernel)
    except ValidationError as exc:
        problems += [_problem(e, (), origins, root) for e in exc.errors()]
    disabled = set(settings.modules.disabled) if settings is not None else set()
    typed: dict[str, BaseModel] = {}
    for name, model in sections.items():
        if model is None:
            continue
        try:
            typed[name] = model.model_validate(modules.get(name, {}))
        except ValidationError as exc:
            if name in disabled:
                continue
            problems += [_problem(e, (name,), origins, model) for e in exc.errors()]
    if problems or settings is None:
        raise ConfigError(_summary(problems), problems)
    settings = Settings.model_validate({**kernel, **modules})
    settings._sections.update(typed)
    return settings


# -- the reference: every section and key, from the models -----------------------------------
@dataclass(frozen=True)
class Entry:
    """One key of the reference: ``path`` with ``<name>`` for an entry of a map."""

    path: tuple[str, ...]
    annotation: Any
    default: Any
    description: str

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return ENV_PREFIX + "__".join(p.upper() for p in self.path)

    @property
    def type_text(self) -> str:
        return _type_text(self.annotation)

    @property
    def default_text(self) -> str:
        if self.default is _MISSING:
            return "(required)"
        value = self.default
        if isinstance(value, SecretStr):
            return "(secret)"
        with contextlib.suppress(Exception):  # not JSON-able: shown as it is
            value = TypeAdapter(self.annotation).dump_python(value, mode="json")
        return json.dumps(value, ensure_ascii=False) if value is not None else "(unset)"


def _type_text(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        return _type_text(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return " | ".join(_type_text(a) for a in get_args(tp))
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in get_args(tp))
    if origin is not None:
        args = ", ".join(_type_text(a) for a in get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "none"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


@functools.cache
def _doc_comments(model: type[BaseModel]) -> dict[str, str]:
    """The ``#:`` comment block above each field of ``model`` (Sphinx's attribute docs)."""
    out: dict[str, str] = {}
    try:
        lines = inspect.getsource(model).splitlines()
    except (OSError, TypeError):
        return out
    pending: list[str] = []
    for line in lines[1:]:
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        match = re.match(r"^(\w+)\s*:", text)
        if match and pending and match.group(1) in model.model_fields:
            out[match.group(1)] = " ".join(pending)
        if text:
            pending = []
    return out


def _describe(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    return field.description or _doc_comments(model).get(name, "")


def _walk(model: type[BaseModel], path: tuple[str, ...], out: list[Entry]) -> None:
    if issubclass(model, RootModel):
        _walk_type(model.model_fields["root"].annotation, path, _MISSING, "", out)
        return
    for name, field in model.model_fields.items():
        default = _MISSING if field.is_required() else field.get_default(call_default_factory=True)
        _walk_type(field.annotation, (*path, name), default, _describe(model, name), out)


def _walk_type(tp: Any, path: tuple[str, ...], default: Any, doc: str, out: list[Entry]) -> None:
    inner = _unwrap(tp)
    if _is_model(inner) and not issubclass(inner, RootModel):
        _walk(inner, path, out)
        return
    origin = get_origin(inner)
    if origin in (dict, Mapping):
        value_tp = get_args(inner)[1]
        if _is_model(_unwrap(value_tp)):
            _walk(_unwrap(value_tp), (*path, "<name>"), out)
            return
    out.append(Entry(path, tp, default, doc))


def reference(sections: SectionModels | None = None) -> list[Entry]:
    """Every key of every section (the kernel's, then the modules' by name)."""
    if sections is None:
        sections = installed_sections()
    out: list[Entry] = []
    _walk(Settings, (), out)
    for name in sorted(sections):
        model = sections[name]
        if model is not None:
            _walk(model, (name,), out)
    return out


def reference_markdown(sections: SectionModels | None = None) -> str:
    """The reference as Markdown tables, one per section (docs/operations.md embeds it)."""
    entries = reference(sections)
    lines: list[str] = []
    current = None
    for e in entries:
        section = e.path[0] if len(e.path) > 1 else "(top level)"
        if section != current:
            current = section
            lines += ["", f"#### `{section}`" if len(e.path) > 1 else "#### Top level", ""]
            lines += [
                "| key | type | default | environment | description |",
                "|---|---|---|---|---|",
            ]
        key = ".".join(e.path[1:]) if len(e.path) > 1 else e.path[0]
        cells = [f"`{key}`", e.type_text, e.default_text, f"`{e.env}`", e.description]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines).strip() + "\n"
