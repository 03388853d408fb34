"""Token endpoint latency (issue 2): POST /api/v1/identity/token through a real server.

    .venv/bin/python bench/token.py            # embedded PostgreSQL
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/token.py

Prints, in one run: the in-process floor of one password grant (argon2id verify + EdDSA sign,
no HTTP, no database), a bare route of the same server (`/healthz`) as the HTTP baseline, and
the password and client_credentials grants at 1, 4 and 16 connections (wrk).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.parse

import asyncpg
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from bench._common import bench_database_url, server, table, wrk
from tenantry.kernel.auth.clients import ClientIssuer
from tenantry.kernel.config import load_settings
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry_identity.infrastructure.hashing import Argon2PasswordHasher

PASSWORD = "bench-password-123"
SECONDS = 8


async def setup(url: str) -> dict[str, str]:
    platform = Platform.build(load_settings(None, database={"url": url}), discover())
    assert (await platform.prepare()).ok
    await platform.provisioner.create(
        ProvisionRequest(
            "bench",
            "Bench",
            IsolationMode.SHARED,
            options={"admin_email": "admin@bench.test", "admin_password": PASSWORD},
        )
    )
    tenant = await platform.catalog.by_slug("bench")
    assert tenant is not None
    client, secret = await platform.use(ClientIssuer).create_client(tenant, "b", ["admin"])
    await platform.close()
    return {"client_id": client.client_id, "client_secret": secret}


async def floor() -> float:
    """One password grant's CPU work without HTTP or database: verify + sign (ms, median)."""
    hasher = Argon2PasswordHasher()
    hashed = await hasher.hash(PASSWORD)
    key = ed25519.Ed25519PrivateKey.generate()
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        assert await hasher.verify(PASSWORD, hashed)
        jwt.encode({"sub": "x", "exp": 2_000_000_000}, key, algorithm="EdDSA")
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def post_lua(body: dict[str, str]) -> str:
    encoded = urllib.parse.urlencode(body)
    return (
        f'wrk.method = "POST"\nwrk.body = "{encoded}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )


async def drop(url: str) -> None:
    from tenantry.kernel.db.dsn import database_of, with_database

    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_of(url)}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    url = bench_database_url("token")
    creds = asyncio.run(setup(url))
    floor_ms = asyncio.run(floor())
    rows: list[list[object]] = [
        ["in-process floor (argon2id verify + sign)", "-", "-", f"{floor_ms:.1f}", "-", "-"]
    ]
    password = post_lua(
        {
            "grant_type": "password",
            "username": "admin@bench.test",
            "password": PASSWORD,
            "tenant": "bench",
        }
    )
    client = post_lua({"grant_type": "client_credentials", **creds})
    try:
        with server(url) as base:
            wrk(base + "/healthz", "", 4, 2)  # warm-up
            for name, path, lua, conns in [
                ("GET /healthz (bare route, baseline)", "/healthz", "", 16),
                ("token: password grant", "/api/v1/identity/token", password, 1),
                ("token: password grant", "/api/v1/identity/token", password, 4),
                ("token: password grant", "/api/v1/identity/token", password, 16),
                ("token: client_credentials", "/api/v1/identity/token", client, 4),
                ("token: client_credentials", "/api/v1/identity/token", client, 16),
            ]:
                r = wrk(base + path, lua, conns, SECONDS)
                rows.append(
                    [
                        name,
                        conns,
                        f"{r['rps']:.0f}",
                        f"{r['p50']:.1f}",
                        f"{r['p95']:.1f}",
                        f"{r['p99']:.1f}",
                    ]
                )
                if r["errors"]:
                    rows[-1][0] = f"{name} ({r['errors']:.0f} errors)"
    finally:
        asyncio.run(drop(url))
    print(
        table(
            "Token endpoint (one uvicorn worker, 2-core machine)",
            ["case", "conns", "req/s", "p50 ms", "p95 ms", "p99 ms"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
