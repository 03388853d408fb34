"""The ASGI app factory.

FastAPI for what users know (OpenAPI 3.1 at /openapi.json, docs at /docs), kept lean on hot
routes: orjson responses, no response-model re-validation, authentication in one pure ASGI
middleware instead of per-route dependency trees.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from tenantry import __version__
from tenantry.kernel.http import openapi, problems
from tenantry.kernel.http.input_guard import InputGuard
from tenantry.kernel.http.middleware import RequestContextMiddleware
from tenantry.kernel.http.responses import JsonResponse
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import in_order

READY_MIGRATION_CHECK_S = 30.0


def create_app(platform: Platform, *, manage_lifecycle: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await platform.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await platform.close()

    app = FastAPI(
        title="Tenantry",
        version=__version__,
        default_response_class=JsonResponse,
        lifespan=lifespan,
    )
    app.state.platform = platform
    problems.install(app)

    @app.get("/healthz", tags=["platform"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    pending_cache: dict[str, float] = {"at": -1e9, "value": 0}

    @app.get("/readyz", tags=["platform"])
    async def readyz() -> Any:
        """Database reachable (every probe) and no migration pending (checked every 30 s)."""
        try:
            async with platform.db.platform_unit_of_work() as uow:
                await uow.fetchval("SELECT 1")
            now = time.monotonic()
            if now - pending_cache["at"] > READY_MIGRATION_CHECK_S or pending_cache["value"]:
                pending_cache["value"] = await platform.migrator.pending_count(
                    await platform.catalog.ready()
                )
                pending_cache["at"] = now
            pending = int(pending_cache["value"])
        except Exception as exc:
            return problems.problem_response(
                503, "not-ready", "Not ready", f"database unreachable: {type(exc).__name__}"
            )
        if pending:
            return problems.problem_response(
                503, "not-ready", "Not ready", f"{pending} migrations pending: run tenantry migrate"
            )
        return {"status": "ready"}

    @app.get("/.well-known/jwks.json", tags=["identity"])
    async def jwks() -> dict[str, Any]:
        if not platform.keyring.jwks()["keys"]:
            await platform.keyring.load()
        return platform.keyring.jwks()

    for router, prefix in platform.routers:
        first = len(app.router.routes)
        app.include_router(router, prefix=prefix)
        for route in app.router.routes[first:]:
            gate_by_prefix(route, prefix)
    # Innermost: values no store can hold are refused before any route (and still counted
    # by the observability middleware around it).
    app.add_middleware(InputGuard, credential_paths=lambda: platform.credential_paths)
    # By their declared order, outermost first (kernel/registrar): Starlette wraps the last
    # added outermost, so they are added innermost first.
    for m in reversed(in_order(platform.middleware)):
        app.add_middleware(m.factory, **m.kwargs)
    app.add_middleware(RequestContextMiddleware, platform=platform)  # outermost
    openapi.install(app)
    return app


def _route_path(scope: Scope) -> str:
    """The path routes match against (``root_path`` removed), as Starlette computes it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def gate_by_prefix(route: BaseRoute, prefix: str) -> None:
    """Answer "no match" at once for a path outside ``prefix``, before the route's own
    matching runs.

    Why: FastAPI (0.16x) keeps an included router as one route that tries every route of that
    router, twice per request (to match, then to handle); with the modules' routers in a row,
    reaching a route of the last router costs most of a fast request's time in matching
    (docs/performance.md, "GET balance" and "Measurements behind the code"). Every route of a
    router included with
    ``prefix`` has a path equal to it or under ``prefix/``, so the gate changes no outcome (404,
    405 and the OpenAPI document stay as they were: only ``matches`` is wrapped)."""
    if not prefix:
        return
    under = prefix + "/"
    matches = route.matches

    def gated(scope: Scope) -> tuple[Match, Scope]:
        path = _route_path(scope)
        if path != prefix and not path.startswith(under):
            return Match.NONE, {}
        return matches(scope)

    route.matches = gated  # type: ignore[method-assign]
