"""Every command of the ``tenantry`` CLI, given a bad value for each of its options in turn,
exits within 5 s with one line on stderr: 2 for a value that is invalid, 1 for a failure.

``tenants create badc --name X --chart-of-accounts nope`` once ran at 100 % CPU for 40
minutes and grew to 20 GB: typer rendered the error's traceback with every local (rich).
The commands are read from the CLI itself (plugins included), so a new command or option is
covered without touching this test.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Union, get_args, get_origin
from uuid import UUID

import pytest
import typer

from tenantry import cli as tenantry_cli
from tenantry.kernel.config import Settings
from tests.cli import EXE, process_env

LIMIT_S = 5.0

# A bad value where the type alone does not give one (free text): what is invalid there.
BAD_TEXT: dict[tuple[str, str], str] = {
    ("tenants create", "slug"): "Bad Slug!",
    ("tenants create", "name"): "",
    ("tenants create", "plan"): "no-such-plan",
    ("tenants create", "server"): "no-such-server",
    ("tenants create", "admin_email"): "not-an-email",
    ("tenants create", "admin_password"): "x",
    ("tenants create", "chart_of_accounts"): "nope",
    ("clients create", "roles"): "no-such-role",
    ("clients create", "name"): "",
    ("flags set", "value"): "maybe",
    ("flags rule", "plans"): "no-such-plan",
    ("flags rule", "name"): "",
    ("flags set", "name"): "",
    ("serve", "host"): "no such host!",
    ("demo", "host"): "no such host!",
    ("worker", "consumer"): "no-such-consumer",
    ("", "log_format"): "xml",
    ("slo export", "out"): "/etc/hostname",  # a file
}
# Free text with no invalid value: any string is a valid description.
NO_BAD_VALUE = {("flags rule", "description")}
# Values that let the rest of a command line parse (the option under test is the bad one).
GOOD_TEXT = "nosuch-tenant"


@dataclass(frozen=True)
class Case:
    command: str
    param: str
    argv: tuple[str, ...]


def _walk(cmd: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every runnable command path (a group with a callback that runs, like ``worker``, too)."""
    commands = getattr(cmd, "commands", None)
    if commands is None or getattr(cmd, "invoke_without_command", False):
        yield path
    for name, sub in (commands or {}).items():
        yield from _walk(sub, (*path, name))


def _command(path: tuple[str, ...]) -> typer.core.TyperCommand:
    cmd = typer.main.get_command(tenantry_cli.app)
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return cmd  # type: ignore[return-value]


def _kind(param: object) -> type:
    """The option's Python type (``int``, ``UUID``, an Enum...), ``Optional`` unwrapped."""
    ann = getattr(getattr(param, "type_descriptor", None), "annotation", str)
    if get_origin(ann) in (Union, UnionType):
        ann = next(a for a in get_args(ann) if a is not type(None))
    return ann if isinstance(ann, type) else str


def _good(param: object) -> str:
    kind = _kind(param)
    if kind in (int, float):
        return "1"
    if kind is UUID:
        return str(uuid.uuid4())
    return GOOD_TEXT


def _flag(param: object) -> str:
    return str(getattr(param, "opts")[0])  # noqa: B009


def _bad_values(command: str, param: object) -> list[str]:
    name = str(getattr(param, "name"))  # noqa: B009
    if (command, name) in BAD_TEXT:
        return [BAD_TEXT[(command, name)]]
    kind = _kind(param)
    if kind in (int, float):
        out = ["abc"]
        lo, hi = getattr(param, "min", None), getattr(param, "max", None)
        if lo is not None:
            out.append(str(lo - 1))
        if hi is not None:
            out.append(str(hi * 10 + 1))
        return out
    if kind is UUID:
        return ["not-a-uuid"]
    if issubclass(kind, Enum):
        return ["nope"]
    if issubclass(kind, Path):
        return ["/nonexistent/dir/x"]
    return ["\u2028bad value\u0007"]


def cases() -> list[Case]:
    tenantry_cli._plugins()
    out: list[Case] = []
    root = typer.main.get_command(tenantry_cli.app)
    for param in root.params:  # global options, before any command
        if getattr(param, "is_flag", False) or param.name == "help":
            continue
        for bad in _bad_values("", param):
            out.append(Case("", str(param.name), (_flag(param), bad, "tenants", "list")))
    for path in _walk(root):
        if not path:
            continue
        command = " ".join(path)
        cmd = _command(path)
        params = [p for p in cmd.params if p.name != "help"]
        for target in params:
            if (command, target.name) in NO_BAD_VALUE:
                continue
            is_flag = bool(getattr(target, "is_flag", False))
            values = [f"{_flag(target)}=x"] if is_flag else _bad_values(command, target)
            for bad in values:
                argv: list[str] = list(path)
                for p in params:
                    is_arg = p.param_type_name == "argument"
                    if p is target:
                        argv += [bad] if is_arg or is_flag else [_flag(p), bad]
                    elif p.required:
                        argv += [_good(p)] if is_arg else [_flag(p), _good(p)]
                out.append(Case(command, str(target.name), tuple(argv)))
    return out


CASES = cases()


def _run(env: dict[str, str], case: Case) -> tuple[Case, int, str, float]:
    start = time.monotonic()
    try:
        r = subprocess.run(
            [EXE, *case.argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=LIMIT_S * 4,
            check=False,
        )
        return case, r.returncode, r.stderr, time.monotonic() - start
    except subprocess.TimeoutExpired:
        return case, -1, "(killed: still running)", time.monotonic() - start


def test_every_option_of_every_command_is_covered() -> None:
    commands = {c.command for c in CASES}
    assert {"tenants create", "serve", "demo", "worker", "jobs worker", "exports show"} <= commands
    assert len(CASES) > 50


@pytest.mark.usefixtures("platform")
def test_bad_values_exit_fast_with_one_line(settings: Settings) -> None:
    env = {**process_env(settings), "TENANTRY_DEBUG": ""}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: _run(env, c), CASES))
    problems = []
    for case, code, stderr, took in results:
        lines = [line for line in stderr.splitlines() if line.strip()]
        why = []
        if code not in (1, 2):
            why.append(f"exit {code}")
        if took > LIMIT_S:
            why.append(f"took {took:.1f} s")
        if "Traceback" in stderr:
            why.append("traceback")
        if len(lines) != 1 or not lines[0].startswith("error: "):
            why.append(f"{len(lines)} lines")
        if why:
            problems.append(f"{' '.join(case.argv)!r}: {', '.join(why)}: {stderr[-300:]!r}")
    assert not problems, "\n".join(problems)
