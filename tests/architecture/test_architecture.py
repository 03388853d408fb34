"""Architecture rules: import-linter contracts (layers, module independence, pure domain,
kernel imports no module and not the CLI; the module contracts generated from the entry
points, tests/architecture/contracts.py) and the five-layer module layout."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import tenantry.modules
from tests.architecture.contracts import config, module_contracts, module_packages, to_toml

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("contracts", "domain", "application", "infrastructure")
#: The top of a module: the startup object and the routes (``api.py`` in the older shape).
TOP = (("module", "routes"), ("api",))


def test_import_linter_contracts_hold(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    generated = tmp_path / "importlinter.toml"
    generated.write_text(to_toml(config()))
    result = subprocess.run(
        [str(exe), "--config", str(generated)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout
    assert " 0 broken" in result.stdout


def _module_packages() -> list[Path]:
    """The module packages inside the kernel's distribution (``tenantry/modules/<m>``)."""
    root = Path(tenantry.modules.__file__).parent
    return [p for p in root.iterdir() if (p / "__init__.py").exists()]


def _has(pkg: Path, part: str) -> bool:
    return (pkg / part).exists() or (pkg / f"{part}.py").exists()


def test_every_module_has_the_layers() -> None:
    """Every registered module, in the kernel's distribution or its own, has the layers and
    a top (module.py + routes.py)."""
    dirs = [Path(importlib.import_module(p).__file__ or "").parent for p in module_packages()]
    assert any(d.name == "tenantry_projects" for d in dirs), dirs
    for pkg in dirs:
        for layer in LAYERS:
            assert _has(pkg, layer), f"module {pkg.name} lacks its {layer} layer"
        assert any(all(_has(pkg, part) for part in top) for top in TOP), (
            f"module {pkg.name} has neither module.py + routes.py nor api.py"
        )


def test_every_module_package_is_registered_and_covered_by_contracts() -> None:
    packages = {p.name for p in _module_packages()}
    registered = {ep.name for ep in entry_points(group="tenantry.modules")}
    assert packages <= registered, f"unregistered module packages: {packages - registered}"
    covered = module_packages()
    for name in packages:
        assert f"tenantry.modules.{name}" in covered, f"no contracts for {name}"


def test_a_new_module_entry_point_gets_every_contract() -> None:
    """By construction: one more entry point, and the module is in the independence
    contract and has its layers and pure-domain contracts (capabilities are left out)."""
    eps = [
        EntryPoint("ledger", "tenantry.modules.ledger.api:module", "tenantry.modules"),
        EntryPoint("projects", "tenantry.modules.projects.module:module", "tenantry.modules"),
        EntryPoint("cache", "tenantry.capabilities.cache.api:module", "tenantry.modules"),
        EntryPoint("billing", "tenantry_billing.module:module", "tenantry.modules"),
    ]
    packages = module_packages(eps)
    assert packages == ["tenantry.modules.ledger", "tenantry.modules.projects", "tenantry_billing"]
    contracts = {c["name"]: c for c in module_contracts(packages)}
    assert contracts["Modules are independent except through contracts"]["modules"] == packages
    layers = contracts["projects: module layers"]["layers"]
    assert layers[-1] == "tenantry.modules.projects.domain"
    assert "(tenantry.modules.projects.module)" in layers
    domain = contracts["projects: the domain is pure (no database, HTTP, framework, messaging)"]
    assert domain["source_modules"] == ["tenantry.modules.projects.domain"]
    assert "tenantry.kernel.db" in domain["forbidden_modules"]
    # A module of its own distribution: its own root package, out of the kernel's reach.
    assert contracts["tenantry_billing: module layers"]["layers"][-1] == "tenantry_billing.domain"
    kernel = contracts["The kernel and the capabilities import no module distribution"]
    assert kernel["forbidden_modules"] == ["tenantry_billing"]


def test_platform_admin_is_defined_once() -> None:
    """``PLATFORM_ADMIN`` (kernel/auth/actions.py) is the one definition: no copy of the
    literal in the code (a copy once had to be kept in step by a comment)."""
    src = ROOT / "src" / "tenantry"
    copies = [
        str(p.relative_to(ROOT))
        for p in src.rglob("*.py")
        if "'platform:admin'" in p.read_text() or '"platform:admin"' in p.read_text()
    ]
    assert copies == []
