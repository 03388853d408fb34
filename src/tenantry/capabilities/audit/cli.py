"""`tenantry audit ...`: verify a tenant's hash chain, create future partitions."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.kernel.errors import TenantryError
from tenantry.kernel.platform import Platform

app = typer.Typer(help="Audit log: verify the hash chain, manage partitions.", no_args_is_help=True)


@app.command()
def verify(tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug.")]) -> None:
    """Re-compute the tenant's hash chain; exit 1 naming every edited or deleted record."""
    from tenantry.capabilities.audit.log import AuditLog
    from tenantry.kernel.cli_support import console, err, run

    async def go(platform: Platform) -> tuple[int, list[str]]:
        t = await platform.catalog.by_slug(tenant)
        if t is None:
            raise TenantryError(f"no tenant with slug {tenant!r}")
        return await AuditLog(platform.db).verify(t)

    count, problems = run(go)
    if problems:
        for p in problems:
            err.print(f"[red]✗[/red] {p}")
        err.print(f"audit chain of {tenant} is BROKEN ({len(problems)} problems)")
        raise typer.Exit(1)
    console.print(f"audit chain of {tenant} intact: {count} records verified")


@app.command()
def partitions() -> None:
    """Create this month's and the configured future monthly partitions in every store."""
    from tenantry.capabilities.audit.api import module
    from tenantry.kernel.cli_support import console, run

    async def go(platform: Platform) -> int:
        return await module.ensure_partitions(platform)

    console.print(f"{run(go)} partitions created")
