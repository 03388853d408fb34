"""``tenantry cache stats`` (hit/miss per key prefix) and ``tenantry cache sweep``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tenantry.capabilities.cache.cache import Cache
from tenantry.kernel.cli_support import run
from tenantry.kernel.platform import Platform

cache_app = typer.Typer(help="The cache (PostgreSQL or Redis).", no_args_is_help=True)
console = Console()


@cache_app.command("stats")
def cache_stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Hits, misses and sets per key prefix (all processes, as flushed)."""
    rows = run(lambda p: p.use(Cache).stats())
    if as_json:
        print(json.dumps({"items": rows}))
        return
    table = Table("prefix", "hits", "misses", "sets", "hit rate", "updated")
    for r in rows:
        rate = "-" if r["hit_rate_pct"] is None else f"{r['hit_rate_pct']:.2f} %"
        table.add_row(
            r["prefix"],
            str(r["hits"]),
            str(r["misses"]),
            str(r["sets"]),
            rate,
            r["updated_at"][:19],
        )
    console.print(table)


@cache_app.command("sweep")
def cache_sweep() -> None:
    """Delete expired entries now (the maintenance job does it periodically); audited in the
    operator tenant's log (``cache.swept``, the count removed)."""
    n = run(lambda p: p.use(Cache).backend.sweep(audit=p.platform_audit))
    console.print(f"{n} expired entries deleted")


@cache_app.command("warm")
def cache_warm() -> None:
    """Fill the read paths' hot keys of every ready tenant now (run after a deploy or
    ``tenantry migrate``; serving processes also do it at start-up)."""

    async def go(p: Platform) -> dict[str, int]:
        return await p.use(Cache).warm(await p.catalog.ready())

    filled = run(go)
    if not filled:
        console.print("no read path has a warmer")
    for prefix, n in sorted(filled.items()):
        console.print(f"{prefix}: {n} keys")
