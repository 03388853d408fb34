"""``tenantry errors ...`` and ``tenantry slo ...`` (CLI plugins, entry points tenantry.cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tenantry.kernel.cli_support import run, settings
from tenantry.kernel.errors import TenantryError
from tenantry.kernel.observability import slo, slo_export
from tenantry.kernel.observability.errors import STATUSES
from tenantry.kernel.platform import Platform

errors_app = typer.Typer(help="Errors tracked in PostgreSQL.", no_args_is_help=True)
slo_app = typer.Typer(help="SLOs and error budgets.", no_args_is_help=True)
console = Console()
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _status(value: str | None) -> str | None:
    if value is not None and value not in STATUSES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(STATUSES)}")
    return value


@errors_app.command("list")
def errors_list(
    status: Annotated[
        str | None, typer.Option(help="unresolved | resolved | ignored", callback=_status)
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many groups.", min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Error groups, most recent first."""

    async def go(p: Platform) -> list[dict[str, Any]]:
        try:
            return await p.observability.errors.list(status, limit)
        except ValueError as exc:
            raise TenantryError(str(exc)) from None

    items = run(go)
    if as_json:
        print(json.dumps({"items": items}))
        return
    table = Table("id", "status", "count", "last seen", "type", "message", "culprit")
    for g in items:
        table.add_row(
            str(g["id"]),
            g["status"],
            str(g["occurrences"]),
            g["last_seen"][:19],
            g["error_type"].rsplit(".", 1)[-1],
            g["message"][:60],
            g["culprit"] or "",
        )
    console.print(table)


@errors_app.command("show")
def errors_show(group_id: int, as_json: JsonOpt = False) -> None:
    """One error group with its latest occurrences and stack."""
    g = run(lambda p: p.observability.errors.show(group_id))
    if g is None:
        raise TenantryError(f"no error group {group_id}")
    if as_json:
        print(json.dumps(g))
        return
    console.print(
        f"[bold]#{g['id']} {g['error_type']}[/bold]: {g['message']}\n"
        f"status {g['status']}, {g['occurrences']} occurrences, first {g['first_seen']}, "
        f"last {g['last_seen']}, env {g['environment']}, fingerprint {g['fingerprint']}",
        highlight=False,
    )
    for o in g["recent"][:1]:
        console.print(
            f"latest: request {o['request_id']} tenant {o['tenant_id']} trace {o['trace_id']}",
            highlight=False,
        )
        for f in o["stack"]:
            console.print(f"  {f['module']}:{f['lineno']} in {f['function']}", highlight=False)


@errors_app.command("resolve")
def errors_resolve(
    group_id: int,
    ignore: Annotated[bool, typer.Option("--ignore", help="Ignore instead.")] = False,
    reopen: Annotated[bool, typer.Option("--reopen", help="Mark unresolved.")] = False,
) -> None:
    """Mark an error group resolved (it reopens if it recurs), ignored, or unresolved."""
    status = "ignored" if ignore else "unresolved" if reopen else "resolved"
    if not run(lambda p: p.observability.errors.set_status(group_id, status)):
        raise TenantryError(f"no error group {group_id}")
    console.print(f"error group {group_id} is now {status}")


@slo_app.command("report")
def slo_report(as_json: JsonOpt = False) -> None:
    """SLIs, error budget remaining, burn rates and policy state per SLO."""
    s = settings()

    async def go(p: Platform) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await slo.report(p.db, s.slo), await slo.cache_report(p.db, s.slo)

    rows, cache_rows = run(go, s)
    if as_json:
        print(json.dumps({"window_days": s.slo.window_days, "slos": rows, "cache": cache_rows}))
        return
    table = Table(
        "SLO",
        "target",
        "requests",
        "SLI",
        "budget left",
        "burn 5m/1h/6h",
        "alerts",
        "state",
        title=f"SLOs over {s.slo.window_days} days",
    )
    colour = {"healthy": "green", "stressed": "yellow", "exhausted": "red"}
    for r in rows:
        b = r["burn_rate"]
        alerts = " ".join(x for x, on in (("FAST", r["fast_burn"]), ("slow", r["slow_burn"])) if on)
        target = f"{r['target']:.3%}" + (
            f" ≤{r['threshold_ms']:g}ms" if r["threshold_ms"] is not None else ""
        )
        table.add_row(
            r["slo"],
            target,
            str(r["requests"]),
            f"{r['sli']:.4%}",
            f"{r['budget_remaining']:.1%}",
            f"{b['5m']:.2f}/{b['1h']:.2f}/{b['6h']:.2f}",
            alerts,
            f"[{colour[r['state']]}]{r['state']}[/]",
        )
    console.print(table)
    cache = Table(
        "cache SLO",
        "target",
        "alert below",
        "lookups",
        "hit rate",
        "state",
        title="Cache hit rates",
    )
    tone = {"ok": "green", "below-target": "yellow", "alert": "red", "no-data": "dim"}
    for c in cache_rows:
        cache.add_row(
            c["slo"],
            f"{c['target']:.0%}",
            f"{c['alert_below']:.0%}",
            str(c["lookups"]),
            "-" if c["sli"] is None else f"{c['sli']:.2%}",
            f"[{tone[c['state']]}]{c['state']}[/]",
        )
    console.print(cache)


@slo_app.command("export")
def slo_export_cmd(
    out: Annotated[Path, typer.Option(help="Folder for the generated files.")] = Path("slo"),
) -> None:
    """Write prometheus-rules.yaml and grafana-dashboard.json from the SLO config."""
    s = settings()
    out.mkdir(parents=True, exist_ok=True)
    (out / "prometheus-rules.yaml").write_text(slo_export.rules_yaml(s.slo))
    (out / "grafana-dashboard.json").write_text(slo_export.dashboard_json(s.slo))
    console.print(f"wrote {out}/prometheus-rules.yaml and {out}/grafana-dashboard.json")
