"""``tenantry serve`` with one or several HTTP processes (``--workers N``, ``[http] workers``).

**One process** (N = 1): the command's own process serves (:class:`GracefulServer`), as
before; it starts the platform before binding the port.

**Several processes** (N > 1): uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``,
the one ``uvicorn --workers`` uses; subclassed here as :class:`Supervisor`) binds the port
once and spawns N worker processes that share it (the kernel spreads the connections). The
parent migrates (``--migrate``) and runs the self-check once before it forks, then holds no
database connection: it only watches the workers (a worker that dies is replaced) and passes
SIGTERM on. Each worker builds its own :class:`~tenantry.kernel.platform.Platform` from the
settings the parent resolved (:func:`worker_app`, the app factory uvicorn calls in the
child), starts it (the self-check runs again there: a worker never serves unchecked) and
serves; each runs the in-process job worker, the outbox relay and the saga resumer as the
single process does (every one claims its work with ``FOR UPDATE SKIP LOCKED``, so N of them
share the work and none is done twice; docs/operations.md, "Several processes").

**Shutdown.** SIGTERM (or SIGINT) stops accepting connections at once (the parent closes its
copy of the listening socket, each worker its own), lets every request in flight finish for
up to ``[http] graceful_timeout_s``, stops the job worker, closes the platform and exits 0.
uvicorn's ``Server`` re-raises a caught SIGTERM once it has shut down (its
``capture_signals``), which killed ``tenantry serve`` with the signal (exit -15) before the
job worker was stopped and the platform closed: :class:`GracefulServer` does not.

**Which worker answered**: every response carries ``X-Tenantry-Worker: <pid>``, one of
uvicorn's per-process default headers (set once when the worker loads, no per-request work).

Why not gunicorn: uvicorn's supervisor is already a dependency, does what gunicorn's arbiter
would here (spawn, replace a dead worker, pass signals) and keeps one server to configure.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from tenantry.kernel.config import Settings
from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.platform import Platform

WORKER_HEADER = b"x-tenantry-worker"


def cpu_count() -> int:
    """The CPU cores this process may run on (its affinity mask, else the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class WorkerCount:
    """How many processes serve, and why (printed by ``tenantry serve`` when it is not what
    was asked or the default)."""

    n: int
    note: str | None = None


def resolve_workers(
    requested: int | None, configured: int | None, per_process_limits: str | None
) -> WorkerCount:
    """The number of HTTP processes: ``--workers`` (``requested``), else ``[http] workers``
    (``configured``), else one per core. ``per_process_limits``: why rate limits cannot be
    shared between processes (the ``memory`` backend), or None when they can: then the
    default is 1 and an explicit N > 1 is refused (``ValidationFailed``: exit 2), since N
    processes would each allow the whole limit."""
    explicit = requested if requested is not None else configured
    if explicit is not None:
        if explicit > 1 and per_process_limits:
            source = "--workers" if requested is not None else "[http] workers"
            raise ValidationFailed(
                f"{source} {explicit}: {per_process_limits}; rate limits would not hold "
                "across processes (each would allow the whole limit): set "
                'ratelimit.backend = "redis" (TENANTRY_RATELIMIT__BACKEND=redis), or serve '
                "with --workers 1"
            )
        return WorkerCount(explicit)
    cores = cpu_count()
    if per_process_limits and cores > 1:
        return WorkerCount(
            1,
            f"workers: 1 of {cores} cores ({per_process_limits}; set "
            'ratelimit.backend = "redis" to serve with one process per core)',
        )
    return WorkerCount(cores)


# -- the server ----------------------------------------------------------------------------
class WorkerConfig(uvicorn.Config):
    """uvicorn's config, plus ``X-Tenantry-Worker: <pid>`` among the default headers uvicorn
    adds to every response (computed once, in the process that loads the config)."""

    def load(self) -> None:
        super().load()
        self.encoded_headers = [*self.encoded_headers, (WORKER_HEADER, str(os.getpid()).encode())]


class GracefulServer(uvicorn.Server):
    """uvicorn's server without re-raising the signal that stopped it: SIGTERM drains the
    requests in flight and ``serve`` returns, so the caller stops its background work,
    closes the platform and exits 0 (uvicorn would kill the process with the signal once
    its shutdown is done, skipping both)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def server_config(app: Any, host: str, port: int, settings: Settings, **kw: Any) -> WorkerConfig:
    return WorkerConfig(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=settings.http.graceful_timeout_s,
        **kw,
    )


# -- several processes ---------------------------------------------------------------------
class Supervisor(Multiprocess):
    """uvicorn's process supervisor, with a shutdown that refuses new connections at once
    and waits a bounded time, and a way to tell a stop by signal from a worker that could
    not start."""

    def __init__(self, config: uvicorn.Config, sockets: list[Any], join_timeout_s: float) -> None:
        super().__init__(config, sockets)
        self.join_timeout_s = join_timeout_s
        self.signalled = False

    def _stop(self) -> None:
        self.signalled = True
        # The workers close their copies as their shutdown begins; once this one is closed
        # too, new connections are refused instead of waiting in the backlog.
        for sock in self.sockets:
            sock.close()
        self.should_exit.set()

    def handle_term(self) -> None:
        self._stop()

    def handle_int(self) -> None:
        self._stop()

    def join_all(self) -> None:
        for process in self.processes:
            process.process.join(self.join_timeout_s)
            if process.process.exitcode is None:  # stuck past the graceful timeout
                process.kill()
                process.process.join(5)


def worker_app(settings: Settings, database_url: str) -> Any:
    """The app factory uvicorn calls in each worker process: a platform of its own on the
    settings the parent resolved (``database_url``: the parent's, an embedded server's
    included), started by the app's lifespan. A failure is one line on stderr and the exit
    code uvicorn's supervisor reads as "cannot start" (it then stops instead of respawning)."""
    from tenantry.kernel.http.app import create_app
    from tenantry.kernel.modules import discover
    from tenantry.kernel.observability import logs

    try:
        logs.configure(settings.logging.format, settings.logging.level)
        platform = Platform(settings, discover(settings.modules.disabled), database_url)
    except Exception as exc:
        _startup_failed(exc)
    app = create_app(platform, manage_lifecycle=False)
    app.router.lifespan_context = partial(_worker_lifespan, platform)
    return app


@contextlib.asynccontextmanager
async def _worker_lifespan(platform: Platform, _app: Any) -> AsyncIterator[None]:
    try:
        await platform.start()
    except Exception as exc:
        with contextlib.suppress(Exception):
            await platform.close()
        _startup_failed(exc)
    async with background_jobs(platform):
        freeze_heap()
        yield
    await platform.close()


def _startup_failed(exc: BaseException) -> NoReturn:
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    print(f"error: worker {os.getpid()}: {type(exc).__name__}: {text}", file=sys.stderr, flush=True)
    # uvicorn would log a traceback for anything raised here; this is the code its
    # supervisor reads as "the app cannot start" (it stops rather than respawn forever).
    os._exit(STARTUP_FAILURE)


@contextlib.asynccontextmanager
async def background_jobs(platform: Platform) -> AsyncIterator[None]:
    """The in-process job worker (``[jobs] in_process``) while the block runs; stopped (the
    running jobs finish or are released) when it ends."""
    stop = asyncio.Event()
    task = (
        asyncio.get_running_loop().create_task(platform.jobs.work(stop))
        if platform.jobs.settings.in_process
        else None
    )
    try:
        yield
    finally:
        stop.set()
        if task is not None:
            await task


def freeze_heap() -> None:
    """Everything built so far (modules, routes, pydantic schemas, caches) lives as long as the
    process: move it out of the cyclic collector's way. Without this, the collections that
    request allocations trigger kept walking that heap: a third of the CPU of a large ledger
    batch (docs/performance.md, "Ledger after round-trip work")."""
    gc.collect()
    gc.freeze()


def serve_workers(settings: Settings, database_url: str, host: str, port: int, n: int) -> bool:
    """Serve with ``n`` worker processes until SIGTERM/SIGINT; False if a worker could not
    start (its error is on stderr)."""
    factory: Callable[[], Any] = partial(worker_app, settings, database_url)
    config = server_config(factory, host, port, settings, factory=True, workers=n)
    sock = config.bind_socket()
    supervisor = Supervisor(config, [sock], join_timeout_s=settings.http.graceful_timeout_s + 10)
    try:
        supervisor.run()
    finally:
        sock.close()
    return supervisor.signalled
