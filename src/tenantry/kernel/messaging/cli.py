"""``tenantry messages dead list|replay ID|discard ID``, ``tenantry sagas list|show ID`` and
``tenantry worker`` (CLI plugins, entry-point group ``tenantry.cli``)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from tenantry.kernel import cli_support as cli
from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.messaging import dead
from tenantry.kernel.modules import only

if TYPE_CHECKING:
    from tenantry.kernel.platform import Platform

messages_app = typer.Typer(help="Messaging: the outbox's dead letters.", no_args_is_help=True)
dead_app = typer.Typer(help="Dead letters of every tenant store.", no_args_is_help=True)
messages_app.add_typer(dead_app, name="dead")
sagas_app = typer.Typer(help="Sagas (tenant onboarding): state and history.", no_args_is_help=True)
worker_app = typer.Typer(help="Run the outbox relay and the bus consumers.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    return str(v)


@dead_app.command("list")
def dead_list(as_json: JsonOpt = False) -> None:
    """Dead letters of every tenant."""
    rows = cli.run(lambda p: dead.list_dead(p.db, p.catalog))
    if as_json:
        print(json.dumps({"items": _jsonable(rows)}))
        return
    for r in rows:
        print(
            f"{r['id']}  {r['tenant']}  {r['name']}  target={r['target'] or '*'}  "
            f"attempts={r['attempts']}  {r['last_error']}"
        )
    if not rows:
        print("no dead letters")


def _one(fn: Any, dead_id: str, verb: str) -> None:
    ok = cli.run(lambda p: fn(p.db, p.catalog, UUID(dead_id)))
    if not ok:
        cli.err.print(f"[red]error:[/red] no dead letter {dead_id}")
        raise typer.Exit(1)
    print(f"{verb} {dead_id}")


@dead_app.command("replay")
def dead_replay(dead_id: str) -> None:
    """Put a dead letter back into its tenant's outbox (attempts reset)."""
    _one(dead.replay, dead_id, "replayed")


@dead_app.command("discard")
def dead_discard(dead_id: str) -> None:
    """Delete a dead letter."""
    _one(dead.discard, dead_id, "discarded")


@sagas_app.command("list")
def sagas_list(
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Sagas, newest first."""
    from tenantry.kernel.messaging.saga import SagaStore

    rows = cli.run(lambda p: SagaStore(p.db).list(limit))
    if as_json:
        print(json.dumps({"items": _jsonable(rows)}))
        return
    for r in rows:
        print(f"{r['id']}  {r['kind']}  {r['status']}  step={r['step']}  {r['error'] or ''}")
    if not rows:
        print("no sagas")


@sagas_app.command("show")
def sagas_show(saga_id: str) -> None:
    """One saga: state, data and the log of its steps."""
    from tenantry.kernel.messaging.saga import SagaStore

    row = cli.run(lambda p: SagaStore(p.db).get(UUID(saga_id)))
    if row is None:
        cli.err.print(f"[red]error:[/red] no saga {saga_id}")
        raise typer.Exit(1)
    print(json.dumps(_jsonable(row), indent=2))


async def run_worker(platform: Platform, consumers: list[str] | None, relay: bool) -> None:
    """Relay + bus consumers until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    m = platform.messaging
    bindings = m.dispatcher.bus_bindings() if m.dispatcher.routes.uses_bus else {}
    unknown = sorted(set(consumers or ()) - set(bindings))
    if unknown:  # before anything starts: a typo must not leave a worker that does nothing
        known = ", ".join(sorted(bindings)) or "none: no consumer is routed over the bus"
        msg = f"unknown consumer {', '.join(map(repr, unknown))} (known: {known})"
        raise ValidationFailed(msg, errors=[{"field": "consumer", "message": msg}])
    if relay and not m.relay.running:
        await m.start_relay()
    from tenantry.kernel.messaging.rabbitmq import RabbitBus

    bus = RabbitBus(m.settings, m.dispatcher, platform.catalog, role="worker")
    names: list[str] = []
    if m.dispatcher.routes.uses_bus:
        names = await bus.consume(consumers)
    logging.getLogger(__name__).warning(
        "worker running: relay=%s modules=%s consumers=%s",
        relay,
        ",".join(m.name for m in platform.modules if not m.capability),
        ",".join(names) or "-",
    )
    print("worker ready", flush=True)
    # Stale sagas are resumed by Platform.start (messaging.saga_resume), as in `serve`.
    await stop.wait()
    await bus.close()


@worker_app.callback(invoke_without_command=True)
def worker(
    consumer: Annotated[
        list[str] | None, typer.Option("--consumer", help="Only these consumers (repeat).")
    ] = None,
    no_relay: Annotated[bool, typer.Option("--no-relay", help="Consumers only.")] = False,
    modules: Annotated[
        str | None,
        typer.Option(
            "--modules",
            help="Load only these modules (comma-separated; with what they depend on and the "
            "capabilities): a worker for their bus consumers, deployed apart. Implies "
            "--no-relay: the relay delivers in-process consumers too, so it runs only where "
            "every module is loaded.",
        ),
    ] = None,
) -> None:
    """Run the outbox relay and the RabbitMQ consumers (until SIGTERM)."""
    s = cli.settings()
    logging.basicConfig(level=s.logging.level, format="%(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {"messaging": {"relay_in_process": False}}
    if modules is not None:
        disabled = only(modules.split(","), s.modules.disabled)
        overrides["modules"] = {"disabled": disabled}
    s = cli.settings(**overrides)

    async def go(p: Platform) -> None:
        await p.start()
        await run_worker(p, consumer or None, not no_relay and modules is None)

    cli.run(go, s)
