"""The import-linter configuration the suite checks: pyproject's ``[tool.importlinter]`` (the
kernel's and the capabilities' contracts) plus the contracts of every module, generated from
the entry points ``tenantry.modules``: a module registered there is covered by construction
(independence from the other modules except through their contracts, its layers, a pure
domain), with nothing to add to pyproject.

``python -m tests.architecture.contracts > /tmp/contracts.toml && lint-imports --config
/tmp/contracts.toml`` runs the same check by hand. A hand-written serializer (the values are
strings, lists of strings and booleans): the standard library reads TOML but cannot write it.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: The top layer is the startup object and the routes (docs/modules.md, "The shape").
LAYERS = ("(module)", "(routes)", "infrastructure", "application", "domain")
#: The kernel-only doors to the database (admin, owner, a tenant given explicitly).
PRIVILEGED = "tenantry.kernel.db.privileged"
#: What no module's domain imports (a module may forbid more in pyproject).
IMPURE = [
    "asyncpg",
    "fastapi",
    "starlette",
    "httpx",
    "smtplib",
    "tenantry.kernel.db",
    "tenantry.kernel.http",
    "tenantry.kernel.messaging",
]


def module_packages(eps: Iterable[EntryPoint] | None = None) -> list[str]:
    """The package of every module registered under ``tenantry.modules``: each module is
    its own distribution with a top-level package (``tenantry_projects``). The capabilities
    register there too, from inside the kernel's distribution (``tenantry.capabilities``):
    they are not layered modules and keep their own contracts."""
    found = eps if eps is not None else entry_points(group="tenantry.modules")
    return sorted(
        {ep.module.rsplit(".", 1)[0] for ep in found if not ep.module.startswith("tenantry.")}
    )


def _top_level(packages: list[str]) -> list[str]:
    """The modules' root packages (import-linter must be told them)."""
    return sorted({p.split(".", 1)[0] for p in packages})


def _layer(package: str, layer: str) -> str:
    if layer.startswith("("):
        return f"({package}.{layer[1:-1]})"
    return f"{package}.{layer}"


def module_contracts(packages: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": "Modules are independent except through contracts",
            "type": "independence",
            "modules": packages,
            # A module may import another module's contracts (its public surface), nothing else.
            "ignore_imports": [
                "** -> *.contracts",
            ],
            # Whether it matches depends on the modules installed.
            "unmatched_ignore_imports_alerting": "none",
        }
    ]
    out.append(
        {
            # Admin and owner connections and units of work for a tenant the caller picks are
            # kernel-only: a module reaches data through the ambient tenant's unit of work.
            # Direct imports only: the kernel's own API uses them underneath.
            "name": "Modules open no admin, owner or explicit-tenant connection",
            "type": "forbidden",
            "source_modules": packages,
            "forbidden_modules": [PRIVILEGED],
            "allow_indirect_imports": True,
        }
    )
    if outside := _top_level(packages):
        out.append(
            {
                "name": "The kernel and the capabilities import no module distribution",
                "type": "forbidden",
                "source_modules": ["tenantry.kernel", "tenantry.capabilities"],
                "forbidden_modules": outside,
            }
        )
    for package in packages:
        out.append(
            {
                "name": f"{package}: module layers",
                "type": "layers",
                "layers": [_layer(package, layer) for layer in LAYERS],
            }
        )
        out.append(
            {
                "name": f"{package}: the domain is pure (no database, HTTP, framework, messaging)",
                "type": "forbidden",
                "source_modules": [f"{package}.domain"],
                "forbidden_modules": IMPURE,
            }
        )
    return out


def module_extras() -> list[dict[str, Any]]:
    """What the module distributions of this repository forbid beyond the generated
    contracts: ``[[tool.importlinter.contracts]]`` of ``modules/<m>/pyproject.toml``."""
    out: list[dict[str, Any]] = []
    for path in sorted((ROOT / "modules").glob("*/pyproject.toml")):
        tool = tomllib.loads(path.read_text()).get("tool", {})
        out.extend(tool.get("importlinter", {}).get("contracts", []))
    return out


def config(packages: list[str] | None = None) -> dict[str, Any]:
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    packages = packages or module_packages()
    contracts = [*base.get("contracts", []), *module_contracts(packages), *module_extras()]
    roots = [*base["root_packages"], *_top_level(packages)]
    return {**base, "root_packages": roots, "contracts": contracts}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML here")


def to_toml(cfg: dict[str, Any]) -> str:
    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {_value(v)}" for k, v in cfg.items() if k != "contracts"]
    for contract in cfg["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{k} = {_value(v)}" for k, v in contract.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(to_toml(config()))
