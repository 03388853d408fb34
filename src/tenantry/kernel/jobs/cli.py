"""``tenantry jobs worker``: run the job worker (CLI plugin, entry point ``tenantry.cli``)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from tenantry.kernel.cli_support import run, settings
from tenantry.kernel.platform import Platform

app = typer.Typer(help="Background jobs and schedules.", no_args_is_help=True)


async def serve_worker(platform: Platform, concurrency: int | None, once: bool) -> None:
    await platform.start(listen=True)
    if once:
        n = await platform.jobs.run_pending()
        typer.echo(f"ran {n} jobs")
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    typer.echo(
        f"worker {platform.jobs.worker_id}: kinds {sorted(platform.jobs.handlers)}", err=True
    )
    await platform.jobs.work(stop, concurrency)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once.", min=1, max=1000)
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run what is due, then exit.")] = False,
) -> None:
    """Claim and run jobs of every tenant store until SIGTERM/SIGINT."""
    s = settings()
    logging.basicConfig(level=s.logging.level, format="%(levelname)s %(name)s: %(message)s")
    run(lambda p: serve_worker(p, concurrency, once), s)
