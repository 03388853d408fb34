"""gate_by_prefix: routers included with a prefix answer "no match" at once outside it, and
nothing a client sees changes (match, 404, 405, root_path, OpenAPI)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from tenantry.kernel.http.app import gate_by_prefix


def build(*, gated: bool) -> FastAPI:
    app = FastAPI()
    for name in ("alpha", "beta"):
        router = APIRouter()

        @router.get("/items/{item_id}")
        async def item(item_id: str, name: str = name) -> dict[str, str]:
            return {"router": name, "item": item_id}

        @router.get("")
        async def root(name: str = name) -> dict[str, str]:
            return {"router": name}

        first = len(app.router.routes)
        app.include_router(router, prefix=f"/api/{name}")
        if gated:
            for route in app.router.routes[first:]:
                gate_by_prefix(route, f"/api/{name}")
    return app


CASES = [
    ("GET", "/api/beta/items/7"),
    ("GET", "/api/alpha/items/7"),
    ("GET", "/api/beta"),
    ("GET", "/api/betax/items/7"),
    ("GET", "/api/gamma/items/7"),
    ("POST", "/api/beta/items/7"),
    ("GET", "/api/beta/"),
]


@pytest.mark.parametrize(("method", "path"), CASES)
async def test_gated_app_answers_like_the_plain_one(method: str, path: str) -> None:
    answers = []
    for gated in (False, True):
        transport = httpx.ASGITransport(app=build(gated=gated))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.request(method, path, follow_redirects=False)
            answers.append((r.status_code, r.content))
    assert answers[0] == answers[1]


async def test_gate_under_root_path_and_openapi_unchanged() -> None:
    transport = httpx.ASGITransport(app=build(gated=True), root_path="/prefix")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/prefix/api/beta/items/9")
        assert r.json() == {"router": "beta", "item": "9"}
    assert build(gated=True).openapi()["paths"] == build(gated=False).openapi()["paths"]
