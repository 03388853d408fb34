"""The ``tenantry`` command line (typer + rich).

Every outcome is an exit code and, on failure, one line on stderr: 0 done; 1 the command
failed (``error: ...``); 2 bad usage or an invalid value (an unknown option, a value of the
wrong type or out of range, input the platform refuses as invalid). A traceback is printed
only with ``--debug`` or ``TENANTRY_DEBUG=1``. typer's "pretty" exceptions are off: rendering
a traceback with its locals (a Platform, asyncpg pools...) once ran for 40 minutes and grew to
20 GB; :func:`main` handles every exception itself.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tenantry.kernel.auth.clients import ClientIssuer
from tenantry.kernel.cli_support import console, err, run, settings, state
from tenantry.kernel.config import Settings, reference_markdown
from tenantry.kernel.db.embedded import stop_embedded
from tenantry.kernel.errors import ConfigError, ProblemError, TenantryError, ValidationFailed
from tenantry.kernel.modules import declared_onboarding_options
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode, TenantStatus
from tenantry.kernel.tenancy.onboarding import OnboardingOption, shown_outputs
from tenantry.kernel.tenancy.provisioning import ProvisionRequest

app = typer.Typer(
    help="Tenantry: multi-tenant SaaS platform on PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
tenants_app = typer.Typer(help="Tenant catalog and provisioning.", no_args_is_help=True)
clients_app = typer.Typer(help="API clients (client_credentials).", no_args_is_help=True)
keys_app = typer.Typer(help="JWT signing keys.", no_args_is_help=True)
db_app = typer.Typer(help="The embedded PostgreSQL.", no_args_is_help=True)
config_app = typer.Typer(
    help="The configuration: check it, print the reference of every key.", no_args_is_help=True
)
app.add_typer(tenants_app, name="tenants")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file (default: $TENANTRY_CONFIG).",
        envvar="TENANTRY_CONFIG",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="json | console (default: the config's logging.format).",
        show_default=False,
    ),
]


DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug",
        envvar="TENANTRY_DEBUG",
        help="On an error, print the traceback too ($TENANTRY_DEBUG=1).",
    ),
]


def _host(value: str | None) -> str | None:
    """A bind address must be an IP address or a name that resolves (checked before any
    work, so ``demo --host typo`` fails at once instead of after setting up the demo)."""
    if value is None:
        return None
    try:
        socket.getaddrinfo(value, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise typer.BadParameter(f"{value!r} is not an address this machine can bind") from None
    return value


HostOpt = Annotated[str | None, typer.Option(help="Bind address.", callback=_host)]
PortOpt = Annotated[int | None, typer.Option(help="Port.", min=1, max=65535)]


@app.callback()
def _main(
    config: ConfigOpt = None, log_format: LogFormatOpt = None, debug: DebugOpt = False
) -> None:
    state.config = config
    state.log_format = log_format
    state.debug = debug


def _progress(store: Any, names: list[str]) -> None:
    if names:
        err.print(f"  [green]✓[/green] {store.label}: {len(names)} applied")


async def _migrate(platform: Platform, quiet: bool = False) -> None:
    report = await platform.prepare(None if quiet else _progress)
    if not report.ok:
        for label, why in report.failed.items():
            err.print(f"[red]✗ {label}:[/red] {why}")
        raise TenantryError(
            f"{len(report.failed)} of {report.stores} stores failed; fix and run "
            "`tenantry migrate` again (it resumes)"
        )
    if not quiet:
        err.print(f"migrations: {report.applied_count} applied over {report.stores} stores")


@app.command()
def migrate() -> None:
    """Create roles, apply migrations to every store (platform, shared, each tenant)."""
    run(_migrate)


async def _serve(platform: Platform, host: str, port: int, migrate_first: bool) -> None:
    """One process: start the platform (the self-check) before binding the port, serve until
    SIGTERM/SIGINT (requests in flight finish: kernel/http/workers.GracefulServer)."""
    from tenantry.kernel.http.app import create_app
    from tenantry.kernel.http.workers import (
        GracefulServer,
        background_jobs,
        freeze_heap,
        server_config,
    )

    if migrate_first:
        await _migrate(platform, quiet=True)
    await platform.start()  # self-check before binding the port
    app = create_app(platform, manage_lifecycle=False)
    server = GracefulServer(server_config(app, host, port, platform.settings))
    freeze_heap()
    err.print(f"serving on http://{host}:{port}  (OpenAPI: /docs)")
    async with background_jobs(platform):
        await server.serve()


async def _before_workers(platform: Platform, migrate_first: bool) -> str:
    """What the parent of several workers does once, before forking: migrations (if asked)
    and the self-check; the database URL the workers use (an embedded server's included)."""
    from tenantry.kernel.db.rls import raise_if_unsafe

    if migrate_first:
        await _migrate(platform, quiet=True)
    raise_if_unsafe(await platform.check())
    return platform.db.admin_url


def _per_process_rate_limits(s: Settings) -> str | None:
    """Why rate limits cannot hold across processes with these settings, or None."""
    if "ratelimit" in s.modules.disabled:
        return None
    from tenantry.capabilities.ratelimit.api import RateLimitSettings

    if s.section("ratelimit", RateLimitSettings).backend == "memory":
        return 'ratelimit.backend is "memory", whose buckets are per process'
    return None


@app.command()
def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    migrate_first: Annotated[bool, typer.Option("--migrate", help="Migrate first.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="HTTP processes (default: [http] workers, else one per core; 1 with the "
            "memory rate-limit backend).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the HTTP server (refuses to start if the database is not safe)."""
    s = settings()
    from tenantry.kernel.http.workers import resolve_workers, serve_workers
    from tenantry.kernel.observability import logs

    count = resolve_workers(workers, s.http.workers, _per_process_rate_limits(s))
    logs.configure(s.logging.format, s.logging.level)
    if count.note:
        err.print(count.note, soft_wrap=True, highlight=False)
    host, port = host or s.http.host, port or s.http.port
    if count.n == 1:
        run(lambda p: _serve(p, host, port, migrate_first), s)
        return
    url = run(lambda p: _before_workers(p, migrate_first), s)
    err.print(f"serving on http://{host}:{port} with {count.n} worker processes  (OpenAPI: /docs)")
    if not serve_workers(s, url, host, port, count.n):
        raise TenantryError("a worker process could not start (its error is above)")


DEMO_TENANTS = [
    ("operator", "Platform operators", IsolationMode.SHARED),
    ("acme", "Acme Corp", IsolationMode.SHARED),
    ("globex", "Globex Inc", IsolationMode.SHARED),
    ("initech", "Initech", IsolationMode.SCHEMA),
]
DEMO_PASSWORD = "tenantry-demo-password"  # noqa: S105 - printed demo credential


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Bind address.", callback=_host)] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Set up, print, exit.")] = False,
) -> None:
    """Zero-setup demo: (embedded) PostgreSQL, migrations, three tenants, the server."""
    s = settings()
    started = time.perf_counter()

    async def go(platform: Platform) -> None:
        where = (
            s.database.url and "DATABASE_URL"
        ) or f"embedded PostgreSQL in {s.database.embedded_dir}/"
        err.print(f"database: {where}")
        await _migrate(platform, quiet=True)
        for slug, name, mode in DEMO_TENANTS:
            if await platform.catalog.by_slug(slug) is None:
                await platform.provisioner.create(
                    ProvisionRequest(
                        slug,
                        name,
                        mode,
                        s.tenancy.default_plan,
                        options={
                            "admin_email": f"admin@{slug}.test",
                            "admin_password": DEMO_PASSWORD,
                        },
                    )
                )
                err.print(f"  created tenant {slug} ({mode.value})")
        err.print(f"ready in {time.perf_counter() - started:.1f}s")
        base = f"http://{host}:{port}"
        console.print(
            "\n[bold]Try it[/bold] (tenants: acme, globex \\[shared], initech \\[schema], operator "
            "\\[platform admins]; "
            f"admin@<tenant>.test / {DEMO_PASSWORD}):\n\n"
            f"  TOKEN=$(curl -s {base}/api/v1/identity/token \\\n"
            f"    -d grant_type=password -d username=admin@acme.test \\\n"
            f"    -d password={DEMO_PASSWORD} -d tenant=acme | python3 -c "
            "'import sys,json; print(json.load(sys.stdin)[\"access_token\"])')\n"
            f'  curl -s {base}/api/v1/identity/me -H "Authorization: Bearer $TOKEN"\n'
            f'  curl -s {base}/api/v1/identity/users -H "Authorization: Bearer $TOKEN"\n\n'
            f"  API docs: {base}/docs\n",
            highlight=False,
            soft_wrap=True,
        )
        if not no_serve:
            await _serve(platform, host, port, migrate_first=False)

    run(go, s)


def tenants_create(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    isolation: Annotated[IsolationMode, typer.Option(help="shared | schema | database")] = (
        IsolationMode.SHARED
    ),
    plan: Annotated[str | None, typer.Option(help="Plan (default: tenancy.default_plan).")] = None,
    server: Annotated[str, typer.Option(help="Database server for database mode.")] = "default",
    as_json: JsonOpt = False,
    **options: str | None,
) -> None:
    """Provision a tenant (all-or-nothing)."""
    s = settings()

    async def go(platform: Platform) -> dict[str, Any]:
        opts = {k: v for k, v in options.items() if v}
        res = await platform.provisioner.create(
            ProvisionRequest(slug, name, isolation, plan or s.tenancy.default_plan, server, opts)
        )
        return {**_tenant_dict(res.tenant), **res.outputs}

    out = run(go, s)
    if as_json:
        print(json.dumps(out))
    else:
        console.print(
            f"created tenant [bold]{out['slug']}[/bold] ({out['isolation']}) id={out['id']}"
        )
        for k, v in shown_outputs(out, list(options)).items():
            console.print(f"  {k}: {v}")


def _register_tenants_create(options: Sequence[OnboardingOption]) -> None:
    """``tenants create`` with one ``--<option>`` flag per onboarding option the installed
    modules declare (``Module.onboarding_options``): its signature, as typer reads it, is the
    kernel's parameters plus those."""
    if any(c.name == "create" for c in tenants_app.registered_commands):
        return
    base = inspect.signature(tenants_create, eval_str=True)
    *head, as_json = (p for p in base.parameters.values() if p.kind is not p.VAR_KEYWORD)
    contributed = [
        inspect.Parameter(
            o.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None, typer.Option(f"--{o.name.replace('_', '-')}", help=o.help)
            ],
        )
        for o in options
    ]
    signature = base.replace(
        parameters=[*head, *contributed, as_json.replace(kind=inspect.Parameter.KEYWORD_ONLY)]
    )

    def command(**kwargs: Any) -> None:
        tenants_create(**kwargs)

    command.__doc__ = tenants_create.__doc__
    setattr(command, "__signature__", signature)  # noqa: B010 - typer reads it
    command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    tenants_app.command("create")(command)


def _tenant_dict(t: Any) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "slug": t.slug,
        "name": t.name,
        "isolation": t.isolation.value,
        "status": t.status.value,
        "plan": t.plan,
        "server": t.server,
        "database": t.database,
        "schema": t.schema,
        "created_at": t.created_at.isoformat(),
    }


@tenants_app.command("list")
def tenants_list(as_json: JsonOpt = False) -> None:
    """List tenants."""
    tenants = run(lambda p: p.catalog.all())
    if as_json:
        print(json.dumps({"items": [_tenant_dict(t) for t in tenants]}))
        return
    table = Table("slug", "name", "isolation", "status", "plan", "store")
    for t in tenants:
        table.add_row(
            t.slug,
            t.name,
            t.isolation.value,
            t.status.value,
            t.plan,
            f"{t.database or '(main)'}/{t.schema}",
        )
    console.print(table)


def _set_status(slug: str, status: TenantStatus) -> None:
    t = run(lambda p: p.provisioner.set_status(slug, status))
    console.print(f"tenant {t.slug} is now {t.status.value}")


@tenants_app.command("suspend")
def tenants_suspend(slug: str) -> None:
    """Suspend a tenant: its tokens are refused (403) at once."""
    _set_status(slug, TenantStatus.SUSPENDED)


@tenants_app.command("activate")
def tenants_activate(slug: str) -> None:
    """Re-activate a suspended tenant."""
    _set_status(slug, TenantStatus.ACTIVE)


@clients_app.command("create")
def clients_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    name: Annotated[str, typer.Option(help="Client name.")],
    roles: Annotated[str, typer.Option(help="Comma-separated role names.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an API client; its secret is shown once."""

    async def go(platform: Platform) -> dict[str, Any]:
        t = await platform.catalog.by_slug(tenant)
        if t is None:
            raise TenantryError(f"no tenant with slug {tenant!r}")
        service = platform.use(ClientIssuer)
        role_list = [r.strip() for r in roles.split(",") if r.strip()]
        client, secret = await service.create_client(t, name, role_list)
        return {
            "id": str(client.id),
            "client_id": client.client_id,
            "client_secret": secret,
            "name": client.name,
            "roles": client.roles,
            "tenant": t.slug,
        }

    out = run(go)
    if as_json:
        print(json.dumps(out))
    else:
        console.print(
            f"client_id:     {out['client_id']}\nclient_secret: {out['client_secret']}"
            "\n(the secret is shown once; store it now)"
        )


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; tokens of the previous key stay valid until they expire."""
    s = settings()
    kid = run(lambda p: p.keyring.rotate(s.auth.algorithm), s)
    console.print(f"new signing key {kid} ({s.auth.algorithm})")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL (if it runs)."""
    s = settings()
    stopped = stop_embedded(s.database.embedded_dir)
    console.print("stopped" if stopped else "not running")


@config_app.command("check")
def config_check() -> None:
    """Check the config file and the TENANTRY_* environment against every section's model:
    OK (exit 0), or every problem, one per line, naming the key and its source (exit 2)."""
    try:
        s = settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        raise typer.Exit(2) from None
    source = state.config or os.environ.get("TENANTRY_CONFIG") or "no config file"
    print(f"OK ({source}; environment: {s.environment})")


@config_app.command("reference")
def config_reference() -> None:
    """Every section and key: type, default, environment variable, description (Markdown,
    generated from the settings models; docs/operations.md embeds the same text)."""
    print(reference_markdown(), end="")


@app.command("modules")
def modules_list(as_json: JsonOpt = False) -> None:
    """Installed modules (entry points ``tenantry.modules``): name, distribution and version,
    what each depends on, and whether the config disables it. Loading order is the
    dependency order ``serve`` uses."""
    from importlib.metadata import entry_points

    from tenantry.kernel.modules import ENTRY_POINT_GROUP, discover, order

    disabled = set(settings().modules.disabled)
    loaded = {m.name: m for m in order(discover(disabled))}
    rows: list[dict[str, Any]] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module = loaded.get(ep.name)
        rows.append(
            {
                "name": ep.name,
                "distribution": ep.dist.name if ep.dist else None,
                "version": ep.dist.version if ep.dist else None,
                "depends_on": list(module.depends_on) if module else [],
                "status": "disabled" if ep.name in disabled else "loaded",
            }
        )
    rank = {name: i for i, name in enumerate(loaded)}
    rows.sort(key=lambda r: rank.get(r["name"], len(rank)))
    if as_json:
        print(json.dumps({"items": rows}))
        return
    table = Table("module", "distribution", "version", "depends on", "status")
    for r in rows:
        table.add_row(
            r["name"], r["distribution"] or "-", r["version"] or "-",
            ", ".join(r["depends_on"]) or "-", r["status"],
        )  # fmt: skip
    console.print(table)


def _plugins(args: Sequence[str] | None = None) -> None:
    """Sub-commands contributed by modules and capabilities (entry points ``tenantry.cli``:
    a ``typer.Typer`` named after the command group), and the onboarding options of the
    installed modules as flags of ``tenants create``. Reading those imports every module
    (~0.2 s), so a command line that is not ``tenants create`` skips it (``args`` None: read
    them, for tools that inspect the whole CLI)."""
    from importlib.metadata import entry_points

    wanted = args is None or ("tenants" in args and "create" in args)
    _register_tenants_create(declared_onboarding_options() if wanted else ())

    for ep in entry_points(group="tenantry.cli"):
        app.add_typer(ep.load(), name=ep.name)


def _debug_wanted(args: Sequence[str]) -> bool:
    env = os.environ.get("TENANTRY_DEBUG", "").strip().lower()
    return state.debug or "--debug" in args or env in {"1", "true", "yes", "on"}


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _fail(message: str, code: int) -> None:
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; exit 0, 1 (failed) or 2 (bad usage or value) with a one-line message."""
    args = list(sys.argv[1:] if argv is None else argv)
    _plugins(args)
    try:
        rv = app(args=args, prog_name="tenantry", standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors: unknown option, bad value...
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except ValidationFailed as exc:  # the platform refused a value as invalid
        _fail(exc.detail, 2)
    except ConfigError as exc:  # a bad setting: each named with its source, exit 2
        _fail("invalid configuration: " + "; ".join(exc.problems), 2)
    except ProblemError as exc:
        _fail(exc.detail, 1)
    except TenantryError as exc:
        _fail(str(exc), 1)
    except Exception as exc:
        if _debug_wanted(args):
            traceback.print_exc()
            _fail(f"{type(exc).__name__}: {exc}", 1)
        _fail(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
