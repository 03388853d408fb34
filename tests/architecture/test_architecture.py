"""Architecture rules: import-linter contracts (layers, module independence, pure domain,
kernel imports no module and not the CLI; the module contracts generated from the entry
points, tests/architecture/contracts.py) and the five-layer module layout."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import tenantry
from tests.architecture.contracts import config, module_contracts, module_packages, to_toml

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("contracts", "domain", "application", "infrastructure")
#: The top of a module: the startup object and the routes.
TOP = ("module", "routes")


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


def _has(pkg: Path, part: str) -> bool:
    return (pkg / part).exists() or (pkg / f"{part}.py").exists()


def test_every_module_has_the_layers() -> None:
    """Every registered module has the layers and a top (module.py + routes.py)."""
    dirs = [Path(importlib.import_module(p).__file__ or "").parent for p in module_packages()]
    assert any(d.name == "tenantry_projects" for d in dirs), dirs
    for pkg in dirs:
        for part in (*LAYERS, *TOP):
            assert _has(pkg, part), f"module {pkg.name} lacks its {part}"


def test_every_module_distribution_is_registered_and_covered_by_contracts() -> None:
    """Each ``modules/<m>`` is a distribution whose package is installed, registered under
    the entry points ``tenantry.modules`` and so covered by the generated contracts."""
    covered = module_packages()
    dists = sorted((ROOT / "modules").glob("*/pyproject.toml"))
    assert {d.parent.name for d in dists} >= {"identity", "ledger", "notifications", "projects"}
    for path in dists:
        packages = [p.name for p in (path.parent / "src").iterdir() if (p / "__init__.py").exists()]
        assert len(packages) == 1, f"{path.parent.name}: one package under src/, not {packages}"
        assert packages[0] in covered, f"{packages[0]} is not registered under tenantry.modules"


def test_the_kernel_distribution_holds_no_module() -> None:
    """Business lives in the module distributions: the kernel's distribution has the kernel,
    the capabilities, the CLI and the test fixtures, and no ``tenantry.modules`` package."""
    root = Path(tenantry.__file__).parent
    packages = sorted(p.name for p in root.iterdir() if (p / "__init__.py").exists())
    assert packages == ["capabilities", "kernel", "testing"]


def test_a_new_module_entry_point_gets_every_contract() -> None:
    """By construction: one more entry point, and the module is in the independence
    contract and has its layers and pure-domain contracts (capabilities are left out)."""
    eps = [
        EntryPoint("ledger", "tenantry_ledger.module:module", "tenantry.modules"),
        EntryPoint("cache", "tenantry.capabilities.cache.api:module", "tenantry.modules"),
        EntryPoint("billing", "tenantry_billing.module:module", "tenantry.modules"),
    ]
    packages = module_packages(eps)
    assert packages == ["tenantry_billing", "tenantry_ledger"]
    contracts = {c["name"]: c for c in module_contracts(packages)}
    assert contracts["Modules are independent except through contracts"]["modules"] == packages
    layers = contracts["tenantry_billing: module layers"]["layers"]
    assert layers[-1] == "tenantry_billing.domain"
    assert "(tenantry_billing.module)" in layers
    name = "tenantry_billing: the domain is pure (no database, HTTP, framework, messaging)"
    domain = contracts[name]
    assert domain["source_modules"] == ["tenantry_billing.domain"]
    assert "tenantry.kernel.db" in domain["forbidden_modules"]
    privileged = contracts["Modules open no admin, owner or explicit-tenant connection"]
    assert privileged["source_modules"] == packages
    assert privileged["forbidden_modules"] == ["tenantry.kernel.db.privileged"]
    # Its own root package, out of the kernel's reach.
    kernel = contracts["The kernel and the capabilities import no module distribution"]
    assert kernel["forbidden_modules"] == ["tenantry_billing", "tenantry_ledger"]


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


#: Module code that enters a tenant's context itself (``tenant_scope``), and why: elsewhere a
#: module works for the ambient tenant of its request, consumer or job.
ENTERS_A_TENANT = {
    # the token grant's tenant comes from the request body; the CLI and onboarding saga call
    # identity outside a request (docs/modules.md, "Units of work of more than one kind")
    "tenantry_identity/infrastructure/units.py",
}


def test_modules_enter_a_tenant_only_where_listed() -> None:
    """A module cannot open a unit of work for a tenant it picks (the privileged contract);
    entering one with ``tenant_scope`` is the one way left, so each use is listed (test
    helpers, ``testing.py``, aside)."""
    found = set()
    for package in module_packages():
        root = Path(importlib.import_module(package).__file__ or "").parent
        for path in root.rglob("*.py"):
            if path.name != "testing.py" and "tenant_scope" in path.read_text():
                found.add(str(path.relative_to(root.parent)))
    assert found == ENTERS_A_TENANT
