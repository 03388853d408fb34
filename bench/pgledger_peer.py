"""pgledger (github.com/pgr0ss/pgledger, a pure-SQL ledger: one function call per transfer) as
the peer of the ledger benchmarks, run from a checkout given by path, never vendored.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
      .venv/bin/python -m bench.pgledger_peer /path/to/pgledger

loads the checkout's SQL (``vendor/scoville-pgsql-ulid/*.sql`` then ``pgledger.sql``, as its
justfile does) into a database of its own, creates 200 accounts in one currency, and runs
pgbench: one ``pgledger_create_transfer`` per transaction between random accounts at 1, 4 and
16 clients, and ``pgledger_create_transfers`` of 100 transfers per transaction. bench/ledger.py
``--peer-pgledger DIR`` runs the same beside our transfer's SQL and prints the ratios.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from bench import _common
from bench._common import bench_database_url, table
from tenantry.kernel.db.dsn import database_of, with_database

#: The checkout's files, in the order its justfile loads them.
FILES = (
    "vendor/scoville-pgsql-ulid/ulid-to-uuid.sql",
    "vendor/scoville-pgsql-ulid/uuid-to-ulid.sql",
    "pgledger.sql",
)
ACCOUNTS = 200
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))


class PeerError(RuntimeError):
    """The pgledger checkout cannot be used (named file missing, SQL failed)."""


def sources(checkout: Path) -> list[Path]:
    paths = [checkout / f for f in FILES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise PeerError(f"not a pgledger checkout ({checkout}): missing {', '.join(missing)}")
    return paths


async def install(url: str, checkout: Path) -> list[str]:
    """A fresh database at ``url`` with pgledger loaded and ``ACCOUNTS`` accounts; their ids."""
    paths = sources(checkout)
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database_of(url)}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database_of(url)}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(url)
    try:
        for path in paths:
            try:
                await conn.execute(path.read_text("utf-8"))
            except asyncpg.PostgresError as exc:
                raise PeerError(f"{path}: {exc}") from exc
        rows = await conn.fetch(
            "SELECT (pgledger_create_account('bench-' || n, 'EUR')).id"
            " FROM generate_series(1, $1) n",
            ACCOUNTS,
        )
    finally:
        await conn.close()
    return [r["id"] for r in rows]


def transfer_script(ids: list[str], per_transaction: int = 1) -> str:
    """One pgledger call per transaction between two distinct random accounts (or
    ``per_transaction`` transfers in one ``pgledger_create_transfers`` call)."""
    half = len(ids) // 2
    lines = [f"\\set a random(1, {half})", f"\\set b random({half + 1}, {2 * half})"]
    # pgbench cannot index an array by a variable: the ids are looked up in a VALUES list.
    table_sql = ", ".join(f"({i + 1}, '{x}')" for i, x in enumerate(ids))
    pick = f"(SELECT id FROM (VALUES {table_sql}) v(n, id) WHERE n = "
    if per_transaction == 1:
        lines.append(f"SELECT count(*) FROM pgledger_create_transfer({pick}:a), {pick}:b), 1);")
    else:
        lines.append(
            "SELECT count(*) FROM pgledger_create_transfers(ARRAY("
            f"SELECT ({pick}((:a + k) % {half}) + 1), {pick}((:b + k) % {half}) + {half + 1}),"
            f" 1)::transfer_request FROM generate_series(1, {per_transaction}) k));"
        )
    return "\n".join(lines) + "\n"


def pgbench(url: str, script: str, clients: int, seconds: int = SECONDS) -> dict[str, float]:
    """bench/_common.pgbench, its failure as a PeerError."""
    try:
        return _common.pgbench(url, script, clients, seconds)
    except RuntimeError as exc:
        raise PeerError(f"pgbench failed: {str(exc)[-800:]}") from exc


async def drop(url: str) -> None:
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database_of(url)}" WITH (FORCE)')
    finally:
        await admin.close()


def measure(checkout: Path, clients: tuple[int, ...] = (1, 4, 16)) -> dict[str, float]:
    """pgledger's transfers/s: ``c<n>`` single transfers at n clients, ``batch100`` transfers/s
    in batches of 100 at 4 clients."""
    url = bench_database_url("pgledger")
    ids = asyncio.run(install(url, checkout))
    try:
        out = {f"c{c}": pgbench(url, transfer_script(ids), c)["tps"] for c in clients}
        out["batch100"] = 100 * pgbench(url, transfer_script(ids, 100), 4)["tps"]
        return out
    finally:
        asyncio.run(drop(url))


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.pgledger_peer /path/to/pgledger-checkout")
    try:
        figures = measure(Path(sys.argv[1]))
    except PeerError as exc:
        sys.exit(str(exc))
    rows: list[list[object]] = [
        [f"pgledger_create_transfer, {k[1:]} clients", f"{v:.0f}"]
        for k, v in figures.items()
        if k != "batch100"
    ]
    rows.append(
        ["pgledger_create_transfers x100, 4 clients (transfers/s)", f"{figures['batch100']:.0f}"]
    )
    print(table("pgledger (peer)", ["case", "per s"], rows))


if __name__ == "__main__":
    main()
