"""The module contract and the loader.

A module is a package in one shape (docs/modules.md: ``module.py`` -> ``routes.py`` ->
application -> domain, infrastructure beside; ``contracts`` its public surface) whose
``module.py`` exposes one ``Module`` object, registered under the entry-point group
``tenantry.modules`` by the module's distribution. The loader discovers them, orders them so
every module starts after the modules it depends on, and stops with a message naming the
modules on a missing dependency or a cycle. Adding a module = implement it + register the
entry point (+ install it). The platform's capabilities (audit, authz, cache, ...) register
the same way, marked ``capability``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from tenantry.kernel.errors import ModuleLoadError, ValidationFailed
from tenantry.kernel.tenancy.onboarding import OnboardingOption

if TYPE_CHECKING:
    from tenantry.kernel.platform import Platform
    from tenantry.kernel.registrar import Registrar

ENTRY_POINT_GROUP = "tenantry.modules"


class Module:
    """Base class of a module's startup object. Override what the module needs."""

    name: ClassVar[str] = ""
    depends_on: ClassVar[tuple[str, ...]] = ()
    #: A shared capability of the platform (audit, authz, cache, ...): every module may use it
    #: without naming it in ``depends_on``, so a process that loads only some modules
    #: (``tenantry worker --modules``) loads every capability.
    capability: ClassVar[bool] = False
    #: Package holding ``platform/`` and ``tenant/`` folders of NNNN_name.sql files.
    migrations: ClassVar[str | None] = None
    #: Actions this module checks (``"ledger:write": "post transactions"``).
    permissions: ClassVar[Mapping[str, str]] = {}
    #: Roles seeded in every new tenant (``{"ledger-clerk": ["ledger:read", "ledger:write"]}``).
    default_roles: ClassVar[Mapping[str, Sequence[str]]] = {}
    #: The typed ``[<name>]`` table of the config (a pydantic model with ``extra="forbid"``,
    #: every field typed, with a default and a description). Its keys are checked at start
    #: and ``TENANTRY_<NAME>__<KEY>`` overrides each one; read it with
    #: ``platform.settings.section(name, Model)``. None: the module has no settings.
    settings_model: ClassVar[type[BaseModel] | None] = None
    #: Further top-level tables the module owns (``{"plans": PlansSettings}``).
    settings_sections: ClassVar[Mapping[str, type[BaseModel]]] = {}
    #: Options of tenant creation the module reads in its onboarding steps: fields of
    #: ``POST /platform/tenants`` and flags of ``tenantry tenants create`` (declared on the
    #: class: the CLI reads them before any platform is built).
    onboarding_options: ClassVar[Sequence[OnboardingOption]] = ()

    @classmethod
    def declared_settings(cls) -> dict[str, type[BaseModel]]:
        """Every config section of the module: its own table and the further ones."""
        out = dict(cls.settings_sections)
        if cls.settings_model is not None:
            out[cls.name] = cls.settings_model
        return out

    def setup(self, registrar: Registrar) -> None:
        """Register routes, handlers, jobs, onboarding steps, middleware and capability
        handles through ``registrar`` (kernel/registrar); every kernel part already exists.
        No I/O here."""

    async def startup(self, platform: Platform) -> None:
        """Called in dependency order once the database is ready."""

    async def shutdown(self, platform: Platform) -> None:
        """Called in reverse dependency order."""

    def __repr__(self) -> str:
        return f"<module {self.name}>"


def discover(disabled: Iterable[str] = ()) -> list[Module]:
    """Instantiate every module registered under the entry-point group."""
    skip = set(disabled)
    found: list[Module] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in skip:
            continue
        try:
            obj = ep.load()
        except Exception as exc:
            raise ModuleLoadError(
                f"module {ep.name!r} ({ep.value}) failed to import: {exc}"
            ) from exc
        module = obj() if isinstance(obj, type) else obj
        if not isinstance(module, Module):
            raise ModuleLoadError(f"entry point {ep.name!r} ({ep.value}) is not a tenantry Module")
        if module.name != ep.name:
            raise ModuleLoadError(
                f"entry point {ep.name!r} loads a module named {module.name!r}; "
                "the names must match"
            )
        found.append(module)
    return found


def only(names: Iterable[str], disabled: Iterable[str] = ()) -> list[str]:
    """The modules to disable so that only ``names``, every capability and what those depend
    on load (``tenantry worker --modules a,b``): the configured ``disabled`` plus the rest.
    An unknown (or disabled) name is a ``ValidationFailed`` naming what is installed."""
    wanted = [n for n in names if n]
    skip = set(disabled)
    installed = {m.name: m for m in discover(skip)}
    unknown = sorted(set(wanted) - installed.keys())
    if unknown or not wanted:
        known = ", ".join(sorted(n for n, m in installed.items() if not m.capability))
        what = "unknown module " + ", ".join(map(repr, unknown)) if unknown else "no module named"
        msg = f"--modules: {what} (installed: {known or 'none'})"
        raise ValidationFailed(msg, errors=[{"field": "modules", "message": msg}])
    keep: set[str] = set()
    todo = [*wanted, *(n for n, m in installed.items() if m.capability)]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(d for d in installed[name].depends_on if d in installed)
    return sorted(skip | (installed.keys() - keep))


def declared_sections(disabled: Iterable[str] = ()) -> dict[str, type[BaseModel] | None]:
    """The config sections of every installed module (entry points), by section name. A
    disabled module's, or one that fails to import, maps to None: its tables are accepted,
    not validated (the operator may keep them while it is off)."""
    from tenantry.kernel.config import KERNEL_SECTIONS

    skip = set(disabled)
    out: dict[str, type[BaseModel] | None] = {}
    owner: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception:
            out.setdefault(ep.name, None)
            continue
        module = obj() if isinstance(obj, type) else obj
        if not isinstance(module, Module):
            continue
        for name, model in type(module).declared_settings().items():
            if name in KERNEL_SECTIONS or (name in owner and owner[name] != ep.name):
                raise ModuleLoadError(
                    f"module {ep.name!r} declares config section [{name}], which "
                    f"{'the kernel' if name in KERNEL_SECTIONS else repr(owner[name])} owns"
                )
            owner[name] = ep.name
            out[name] = None if ep.name in skip else model
        if ep.name in skip:
            out.setdefault(ep.name, None)
    return out


def declared_onboarding_options() -> list[OnboardingOption]:
    """The onboarding options of every installed module (entry points), by module name: the
    flags of ``tenantry tenants create`` (parsed before the config says which are disabled; a
    disabled module's option is accepted and unused)."""
    out: list[OnboardingOption] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception:  # noqa: S112 - reported when the platform is built
            continue
        module = obj() if isinstance(obj, type) else obj
        if isinstance(module, Module):
            out.extend(module.onboarding_options)
    return out


def order(modules: Iterable[Module]) -> list[Module]:
    """Dependency order (stable by name); ModuleLoadError on a missing module or a cycle."""
    by_name: dict[str, Module] = {}
    for m in modules:
        if not m.name:
            raise ModuleLoadError(f"{m!r} has no name")
        if m.name in by_name:
            raise ModuleLoadError(f"two modules are named {m.name!r}")
        by_name[m.name] = m
    missing = [
        f"{m.name!r} depends on {dep!r}, which is not installed or is disabled"
        for m in by_name.values()
        for dep in m.depends_on
        if dep not in by_name
    ]
    if missing:
        raise ModuleLoadError("cannot start: " + "; ".join(sorted(missing)))
    result: list[Module] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise ModuleLoadError("cannot start: module dependency cycle: " + " -> ".join(cycle))
        state[name] = 1
        for dep in sorted(by_name[name].depends_on):
            visit(dep, [*path, name])
        state[name] = 2
        result.append(by_name[name])

    for name in sorted(by_name):
        visit(name, [])
    return result
