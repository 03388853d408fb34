from __future__ import annotations

from typing import ClassVar

import pytest

from tenantry.kernel.errors import ModuleLoadError
from tenantry.kernel.modules import Module, discover, order


def mod(name: str, *deps: str) -> Module:
    class M(Module):
        pass

    M.name = name
    M.depends_on = tuple(deps)
    return M()


def names(mods: list[Module]) -> list[str]:
    return [m.name for m in mods]


def test_dependencies_start_first() -> None:
    got = names(order([mod("reporting", "ledger"), mod("ledger", "identity"), mod("identity")]))
    assert got == ["identity", "ledger", "reporting"]


def test_order_is_stable_for_independent_modules() -> None:
    assert names(order([mod("b"), mod("c"), mod("a")])) == ["a", "b", "c"]


def test_missing_dependency_names_both_modules() -> None:
    with pytest.raises(ModuleLoadError, match=r"'ledger' depends on 'identity'"):
        order([mod("ledger", "identity")])


def test_cycle_names_the_modules_in_it() -> None:
    with pytest.raises(ModuleLoadError, match=r"cycle: a -> b -> c -> a"):
        order([mod("a", "b"), mod("b", "c"), mod("c", "a"), mod("d")])


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ModuleLoadError, match="two modules are named 'x'"):
        order([mod("x"), mod("x")])


def test_discovery_finds_installed_modules_and_honours_disabled() -> None:
    assert "identity" in names(discover())
    assert "identity" not in names(discover(disabled=["identity"]))


class _WithPerms(Module):
    name: ClassVar[str] = "perm"
    permissions: ClassVar[dict[str, str]] = {"perm:do": "do it"}


def test_module_contract_defaults() -> None:
    m = _WithPerms()
    assert m.depends_on == ()
    assert m.migrations is None
    assert "perm:do" in m.permissions
