"""The GET-balance baseline: a bare Starlette + asyncpg handler reading the same account row
(no token, no tenant context, no RLS, no transaction: one query per request).

    BARE_DSN=postgresql://... BARE_SCHEMA=tenant_shared uvicorn bench.bare_balance:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SCHEMA = os.environ.get("BARE_SCHEMA", "tenant_shared")
SQL = (
    f'SELECT id, currency, debits, credits, balance, now() AS as_of FROM "{SCHEMA}".ledger_accounts'
    " WHERE id = $1"
)
state: dict[str, Any] = {}


async def balance(request: Request) -> Response:
    async with state["pool"].acquire() as conn:
        row = await conn.fetchrow(SQL, UUID(request.path_params["id"]))
    body = {
        "account_id": str(row["id"]),
        "currency": row["currency"],
        "debits": int(row["debits"]),
        "credits": int(row["credits"]),
        "balance": int(row["balance"]),
        "as_of": row["as_of"].isoformat(),
    }
    return Response(orjson.dumps(body), media_type="application/json")


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    state["pool"] = await asyncpg.create_pool(os.environ["BARE_DSN"], min_size=4, max_size=20)
    yield
    await state["pool"].close()


app = Starlette(routes=[Route("/balance/{id}", balance)], lifespan=lifespan)
