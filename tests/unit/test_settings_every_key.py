"""Every key of every registered section (the kernel's and every installed module's, from
``reference()``, i.e. from the models): its ``TENANTRY_<SECTION>__<KEY>`` variable reaches
the typed settings object; a misspelt key in the file and in the environment is an error
naming the key and its source; a value of the wrong type likewise.

Before this change the environment reached only the kernel's declared fields (jobs,
messaging, exports, plans, ... were silently ignored) and unknown keys were accepted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel, RootModel, SecretStr

from tenantry.kernel.config import (
    ENV_PREFIX,
    Entry,
    Settings,
    _unwrap,
    installed_sections,
    load_settings,
    reference,
)
from tenantry.kernel.errors import ConfigError

SECTIONS = installed_sections()
ENTRIES = reference(SECTIONS)
#: The name used for ``<name>`` (an entry of a map) per map.
NAMES = {
    ("database", "servers"): "eu2",
    ("exports", "plans"): "free",
    ("plans",): "free",
    ("plans", "free", "routes"): "GET /api/v1/ledger",
}
#: Keys whose map entry names cannot be written in an environment variable name.
NOT_IN_ENV = ("plans.<name>.routes.",)


def concrete(entry: Entry) -> tuple[str, ...]:
    out: list[str] = []
    for part in entry.path:
        out.append(NAMES[tuple(out)] if part == "<name>" else part)
    return tuple(out)


def ids(entry: Entry) -> str:
    return entry.key


def env_ok(entry: Entry) -> bool:
    return not entry.key.startswith(NOT_IN_ENV)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX) or name == "DATABASE_URL":
            monkeypatch.delenv(name)


def read(settings: Settings, path: tuple[str, ...]) -> Any:
    section, *rest = path
    node: Any
    if section in Settings.model_fields:
        node = getattr(settings, section)
    else:
        model = SECTIONS[section]
        assert model is not None
        node = settings.section(section, model)
    for part in rest:
        if isinstance(node, RootModel):
            node = node.root
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


SPECIAL: dict[str, Any] = {
    "database.url": "postgresql://someone@db9:5432/tenantry",
    "database.servers.<name>.url": "postgresql://someone@db2:5432/postgres",
    "database.app_user": "sample_app",
    "database.owner_role": "sample_owner",
    "security.secret_key": "s" * 40,
    "exports.cleanup_cron": "*/5 * * * *",
    "modules.disabled": ["reporting"],
    "dispatch": {"ledger -> reporting": "bus"},
    "slo.objectives": [{"name": "sample", "routes": ["/api/*"], "latency_ms": 100}],
    "slo.cache": [{"prefix": "sample:path", "target": 0.9, "alert_below": 0.5}],
    "authz.default_policies": [{"name": "p", "effect": "deny", "actions": ["ledger:*"]}],
    "plans.<name>.quotas": {"max_users": 3},
    "observability.errors.notify_at": [2, 3],
    "observability.metrics_path": "/sample-metrics",
    "slo.healthy_above": 0.6,
    "slo.exhausted_below": 0.05,
}


def candidates(entry: Entry) -> list[Any]:
    """Valid values other than the default, most likely first."""
    if entry.key in SPECIAL:
        return [SPECIAL[entry.key]]
    tp = _unwrap(entry.annotation)
    default = entry.default
    if tp is bool:
        return [not default]
    if get_origin(tp) is Literal:
        return [v for v in get_args(tp) if v != default]
    if tp is int:
        n = default if isinstance(default, int) else 1
        return [n + 1, n - 1, n * 2, 1, 2]
    if tp is float:
        f = float(default) if isinstance(default, float | int) else 1.0
        return [f + 0.5, f / 2, 0.5, 0.25, f + 1]
    if tp is Path:
        return ["/srv/tenantry-sample"]
    if get_origin(tp) is list:
        return [["sample"]]
    return ["sample-value"]


def env_text(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return "false" if not value else "true"
    return str(value)


def typed(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_defaults=True)
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    return value


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(p.upper() for p in path)


def toml_file(tmp_path: Path, path: tuple[str, ...], literal: str) -> Path:
    cfg = tmp_path / "tenantry.toml"
    if len(path) == 1:
        cfg.write_text(f"{path[0]} = {literal}\n")
    else:
        table = ".".join(json.dumps(p) for p in path[:-1])
        cfg.write_text(f"[{table}]\n{json.dumps(path[-1])} = {literal}\n")
    return cfg


def file_where(cfg: Path, path: tuple[str, ...]) -> str:
    if len(path) == 1:
        return f"{cfg} {path[0]}"
    return f"{cfg} [{path[0]}] {'.'.join(path[1:])}"


def test_the_reference_covers_the_sections_that_were_ignored() -> None:
    keys = {e.key for e in ENTRIES}
    for key in (
        "jobs.in_process",
        "messaging.relay_in_process",
        "exports.storage_path",
        "ratelimit.backend",
        "authz.cache_ttl_s",
        "audit.buffer_max",
        "entitlements.cache_ttl_s",
        "plans.<name>.burst",
        "cache.l1_size",
        "notifications.smtp_host",
    ):
        assert key in keys
    assert len(ENTRIES) > 100


@pytest.mark.parametrize("entry", [e for e in ENTRIES if env_ok(e)], ids=ids)
def test_environment_reaches_the_typed_settings(
    entry: Entry, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = concrete(entry)
    tried = []
    for value in candidates(entry):
        monkeypatch.setenv(env_name(path), env_text(value))
        try:
            settings = load_settings(None)
        except ConfigError as exc:
            tried.append(f"{value!r}: {exc}")
            continue
        assert typed(read(settings, path)) == value, env_name(path)
        return
    pytest.fail(f"{env_name(path)}: no candidate value loaded: {tried}")


def test_route_limits_through_their_map_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TENANTRY_PLANS__FREE__ROUTES", '{"GET /api/v1/ledger": {"rate_per_s": 1, "burst": 2}}'
    )
    settings = load_settings(None)
    route = read(settings, ("plans", "free", "routes", "GET /api/v1/ledger"))
    assert (route.rate_per_s, route.burst) == (1.0, 2)


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_unknown_key_in_the_file_is_named_with_the_file(entry: Entry, tmp_path: Path) -> None:
    path = concrete(entry)
    typo = (*path[:-1], path[-1] + "x")
    cfg = toml_file(tmp_path, typo, "1")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert f"{file_where(cfg, typo)}: unknown" in str(info.value)
    assert f"(did you mean {path[-1]}?)" in str(info.value)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if env_ok(e)], ids=ids)
def test_unknown_key_in_the_environment_is_named(
    entry: Entry, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = concrete(entry)
    name = env_name((*path[:-1], path[-1] + "x"))
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert f"{name}: unknown " in str(info.value)
    assert f"(did you mean {path[-1]}?)" in str(info.value)


def complex_type(entry: Entry) -> bool:
    tp = _unwrap(entry.annotation)
    return get_origin(tp) in (list, dict) or (isinstance(tp, type) and issubclass(tp, BaseModel))


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_wrong_type_in_the_file_is_named(entry: Entry, tmp_path: Path) -> None:
    path = concrete(entry)
    cfg = toml_file(tmp_path, path, '"nope"' if complex_type(entry) else "{ bad = 1 }")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    msg = str(info.value)
    if entry.key == "security.secret_key":  # checked on the table: the value is never echoed
        assert f"{cfg} security:" in msg
        assert "secret_key must be" in msg
    else:
        assert f"{file_where(cfg, path)}: " in msg, msg


def bad_env_value(entry: Entry) -> str | None:
    tp = _unwrap(entry.annotation)
    if tp is bool:
        return "maybe"
    if tp in (int, float):
        return "abc"
    if get_origin(tp) is Literal:
        return "nope"
    if complex_type(entry):
        return "{not json"
    return None  # a string: any text is one


@pytest.mark.parametrize(
    "entry", [e for e in ENTRIES if env_ok(e) and bad_env_value(e) is not None], ids=ids
)
def test_wrong_type_in_the_environment_is_named(
    entry: Entry, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = concrete(entry)
    value = bad_env_value(entry)
    assert value is not None
    monkeypatch.setenv(env_name(path), value)
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert f"{env_name(path)}: " in str(info.value)
    assert value in str(info.value)  # the offending value is shown


def test_every_model_forbids_extra_keys() -> None:
    seen: list[type[BaseModel]] = []

    def visit(tp: Any) -> None:
        tp = _unwrap(tp)
        for arg in get_args(tp):
            visit(arg)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in seen:
            seen.append(tp)
            if not issubclass(tp, RootModel):
                assert tp.model_config.get("extra") == "forbid", tp
            for field in tp.model_fields.values():
                visit(field.annotation)

    for name, field in Settings.model_fields.items():
        del name
        visit(field.annotation)
    for model in SECTIONS.values():
        visit(model)
    assert len(seen) > 20


def test_every_key_has_a_description() -> None:
    missing = [e.key for e in ENTRIES if not e.description]
    assert missing == []


def test_non_setting_variables_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENANTRY_CONFIG", "TENANTRY_DEBUG", "TENANTRY_TEST_PAUSE_AT"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("TENANTRY_DEBUG", "1")
    load_settings(None)


def test_a_disabled_modules_table_is_kept_unchecked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text('[modules]\ndisabled = ["notifications"]\n[notifications]\nold_key = 1\n')
    load_settings(cfg)
    cfg.write_text("[notifications]\nold_key = 1\n")
    with pytest.raises(ConfigError, match=r"\[notifications\] old_key: unknown key"):
        load_settings(cfg)


def test_unknown_sections_and_all_problems_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text("[jbos]\nin_process = false\n[jobs]\nin_proces = false\n")
    monkeypatch.setenv("TENANTRY_MESAGING__RELAY_IN_PROCESS", "false")
    monkeypatch.setenv("TENANTRY_JOBS__CONCURRENCY", "many")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert sorted(info.value.problems) == sorted(
        [
            f"{cfg} jbos: unknown section (did you mean jobs?)",
            f"{cfg} [jobs] in_proces: unknown key (did you mean in_process?)",
            "TENANTRY_MESAGING__RELAY_IN_PROCESS: unknown section (did you mean messaging?)",
            "TENANTRY_JOBS__CONCURRENCY: Input should be a valid integer, unable to parse "
            "string as an integer (got 'many')",
        ]
    )


def test_environment_wins_over_the_file_per_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text("[jobs]\nin_process = true\nconcurrency = 7\n")
    monkeypatch.setenv("TENANTRY_JOBS__IN_PROCESS", "0")
    s = load_settings(cfg)
    assert (s.jobs.in_process, s.jobs.concurrency) == (False, 7)
    for text, value in (("no", False), ("off", False), ("1", True), ("yes", True)):
        monkeypatch.setenv("TENANTRY_JOBS__IN_PROCESS", text)
        assert load_settings(cfg).jobs.in_process is value


def test_the_docs_reference_is_the_generated_one() -> None:
    from tenantry.kernel.config import reference_markdown

    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    embedded = docs[docs.index(start) + len(start) : docs.index(end)]
    assert embedded == reference_markdown(SECTIONS), (
        "docs/operations.md is stale: paste `tenantry config reference` between the markers"
    )
