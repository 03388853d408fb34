"""The app behind bench/observability.py: the platform's real app plus a trivial endpoint.
``BENCH_OBS=off`` removes the observability middleware (and nothing else)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from bench._common import bench_settings
from tenantry.kernel.http.app import create_app
from tenantry.kernel.observability import logs
from tenantry.kernel.observability.middleware import ObservabilityMiddleware
from tenantry.kernel.platform import Platform


def make_app() -> FastAPI:
    settings = bench_settings()
    platform = Platform.build(settings)
    if os.environ.get("BENCH_OBS") == "off":
        platform.middleware = [
            m for m in platform.middleware if m[0] is not ObservabilityMiddleware
        ]
    else:
        # JSON request logs to stdout as in production (the bench sends stdout to /dev/null).
        logs.configure("json", "INFO")
    app = create_app(platform)

    @app.get("/bench/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app
