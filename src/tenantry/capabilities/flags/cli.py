"""`tenantry flags ...`: set a flag for a tenant, define rollout rules, list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.kernel.errors import TenantryError
from tenantry.kernel.platform import Platform

if TYPE_CHECKING:
    from tenantry.capabilities.flags.store import FlagStore


def _store(platform: Platform) -> FlagStore:
    """A store of its own (no plan flags: the values shown are the rules' own), whose changes
    are audited like the API's (kernel/tenancy/audit)."""
    from tenantry.capabilities.flags.store import FlagStore
    from tenantry.kernel.tenancy.audit import PlatformAudit

    audit = PlatformAudit(platform.db, platform.catalog, platform.settings.tenancy.operator_tenant)
    return FlagStore(platform.db, audit=audit)


app = typer.Typer(help="Feature flags per tenant and plan.", no_args_is_help=True)


@app.command("set")
def set_(
    name: Annotated[str, typer.Argument(help="Flag name.")],
    value: Annotated[str, typer.Argument(help="on | off | clear (remove the tenant's target)")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug.")],
) -> None:
    """Turn NAME on or off for one tenant (the flag is created, off by default, if new)."""
    from tenantry.kernel.cli_support import console, run

    choice = {"on": True, "off": False, "clear": None}
    if value not in choice:
        raise typer.BadParameter("on, off or clear", param_hint="VALUE")

    async def go(platform: Platform) -> bool:
        t = await platform.catalog.by_slug(tenant)
        if t is None:
            raise TenantryError(f"no tenant with slug {tenant!r}")
        store = _store(platform)
        await store.set_target(name, t, choice[value])
        return store.enabled(name, t)

    now = run(go)
    console.print(f"{name} for {tenant}: {'on' if now else 'off'}")


@app.command()
def rule(
    name: Annotated[str, typer.Argument(help="Flag name.")],
    default: Annotated[
        bool, typer.Option("--default/--no-default", help="Value when no rule matches.")
    ] = False,
    percentage: Annotated[int, typer.Option(min=0, max=100, help="Rollout: % of tenants.")] = 0,
    plans: Annotated[str, typer.Option(help="Plans that get it, comma-separated.")] = "",
    description: Annotated[str, typer.Option(help="What the flag does.")] = "",
) -> None:
    """Create or replace NAME's rules (default, plans, percentage rollout)."""
    from tenantry.capabilities.flags.store import Flag
    from tenantry.kernel.cli_support import console, run

    flag = Flag(name, description, default, frozenset(p for p in plans.split(",") if p), percentage)

    async def go(platform: Platform) -> None:
        from tenantry.capabilities.entitlements.plans import Plans

        plan_catalog = platform.find(Plans)
        if plan_catalog is not None:
            plan_catalog.check_known(flag.plans, "plans")
        await _store(platform).put(flag)

    run(go)
    console.print(f"{name}: {flag.as_dict()}")


@app.command("list")
def list_() -> None:
    """Every flag and its rules."""
    from tenantry.capabilities.flags.store import FlagStore
    from tenantry.kernel.cli_support import console, run

    async def go(platform: Platform) -> FlagStore:
        store = FlagStore(platform.db)
        await store.load()
        return store

    store = run(go)
    for f in store.flags.values():
        targets = {str(t): v for (n, t), v in store.targets.items() if n == f.name}
        console.print(f"{f.name}: {f.as_dict()} targets={targets}")
