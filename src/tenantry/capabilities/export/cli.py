"""``tenantry exports list|show ID [--watch]`` (CLI plugin, entry point ``tenantry.cli``)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tenantry.kernel.errors import TenantryError
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope

app = typer.Typer(help="Exports: list them, watch one.", no_args_is_help=True)
console = Console()
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug.")]
DONE = ("succeeded", "failed", "cancelled")


async def _in_tenant(platform: Platform, slug: str) -> Any:
    tenant = await platform.catalog.by_slug(slug)
    if tenant is None:
        raise TenantryError(f"no tenant with slug {slug!r}")
    from tenantry.capabilities.export.service import ExportService

    service = platform.use(ExportService)
    await service.load_link_key(platform.secrets)
    return tenant, service


@app.command("list")
def list_(
    tenant: TenantOpt,
    limit: Annotated[int, typer.Option(help="How many.", min=1, max=500)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The tenant's exports, newest first."""
    from tenantry.kernel.cli_support import run

    async def go(platform: Platform) -> list[dict[str, Any]]:
        t, service = await _in_tenant(platform, tenant)
        with tenant_scope(t):
            page = await service.list_exports(limit, None)
        items: list[dict[str, Any]] = page["items"]
        return items

    items = run(go)
    if as_json:
        print(json.dumps(items))
        return
    table = Table("id", "source", "format", "status", "rows", "progress", "created")
    for e in items:
        table.add_row(
            e["id"],
            e["source"],
            e["format"],
            e["status"],
            f"{e['rows_done']}/{e['rows_total'] if e['rows_total'] is not None else '?'}",
            f"{e['progress']:.1f}%",
            e["created_at"][:19],
        )
    console.print(table)


@app.command()
def show(
    export_id: UUID,
    tenant: TenantOpt,
    watch: Annotated[bool, typer.Option("--watch", help="Follow progress until done.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between polls.", min=0.1, max=3600)
    ] = 1.0,
) -> None:
    """One export; with --watch, a progress bar until it ends."""
    from tenantry.kernel.cli_support import run

    async def go(platform: Platform) -> dict[str, Any]:
        t, service = await _in_tenant(platform, tenant)
        with tenant_scope(t):
            export: dict[str, Any] = await service.get(export_id)
            if not watch or export["status"] in DONE:
                return export
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as bar:
                task = bar.add_task(f"{export['source']} → {export['format']}", total=None)
                while export["status"] not in DONE:
                    bar.update(
                        task,
                        total=export["rows_total"],
                        completed=export["rows_done"] or 0,
                        description=f"{export['source']} → {export['format']} [{export['status']}]",
                    )
                    await asyncio.sleep(interval)
                    export = await service.get(export_id)
                bar.update(task, total=export["rows_total"] or 1, completed=export["rows_done"])
            return export

    export = run(go)
    console.print_json(json.dumps(export))
