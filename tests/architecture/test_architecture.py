"""Architecture rules: import-linter contracts (layers, module independence, pure domain,
kernel imports no module) and the five-layer module layout."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import tenantry.modules

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("contracts", "domain", "application", "infrastructure", "api")


def test_import_linter_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(exe), "--config", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout
    assert " 0 broken" in result.stdout


def _module_packages() -> list[Path]:
    """Packages with an ``api`` (a package holding only ``contracts`` is a contract-first
    module whose implementation has not landed yet)."""
    root = Path(tenantry.modules.__file__).parent
    return [
        p
        for p in root.iterdir()
        if (p / "__init__.py").exists() and ((p / "api.py").exists() or (p / "api").exists())
    ]


def test_every_module_has_the_five_layers() -> None:
    for pkg in _module_packages():
        for layer in LAYERS:
            assert (pkg / layer).exists() or (pkg / f"{layer}.py").exists(), (
                f"module {pkg.name} lacks its {layer} layer"
            )


def test_every_module_package_is_registered_and_covered_by_contracts() -> None:
    packages = {p.name for p in _module_packages()}
    registered = {ep.name for ep in entry_points(group="tenantry.modules")}
    assert packages <= registered, f"unregistered module packages: {packages - registered}"
    config = (ROOT / "pyproject.toml").read_text()
    for name in packages:
        assert f'"tenantry.modules.{name}.domain"' in config, f"no layer contract for {name}"
