"""The ASGI app factory.

FastAPI for what users know (OpenAPI 3.1 at /openapi.json, docs at /docs), kept lean on hot
routes: orjson responses, no response-model re-validation, authentication in one pure ASGI
middleware instead of per-route dependency trees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from tenantry import __version__
from tenantry.kernel.http import problems
from tenantry.kernel.http.middleware import RequestContextMiddleware
from tenantry.kernel.http.responses import JsonResponse
from tenantry.kernel.platform import Platform


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

    @app.get("/readyz", tags=["platform"])
    async def readyz() -> Any:
        try:
            async with platform.db.platform_unit_of_work() as uow:
                await uow.fetchval("SELECT 1")
            pending = await platform.migrator.pending_count(await platform.catalog.all())
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
        app.include_router(router, prefix=prefix)
    for factory, kwargs in platform.middleware:
        app.add_middleware(factory, **kwargs)
    app.add_middleware(RequestContextMiddleware, platform=platform)  # outermost
    return app
