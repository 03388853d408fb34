"""RLS cost (DESIGN.md §8: ≤ 5 % throughput loss): the same SQL with row-level security on
and off, in one run, alternating.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.rls

"On" runs as the platform's app role (RLS applies: every tenant table has the RESTRICTIVE
tenant policy and the app policy); "off" runs the very same pgbench scripts as the superuser
of ``DATABASE_URL``, which bypasses RLS, with the tenant predicate the policy would add
written out in its statements (``explicit_tenant``): what an app without RLS must send. Two
scripts: one ledger transfer's SQL transaction
(bench/ledger.py's, statement for statement) and one balance read (BEGIN + tenant settings,
the balance SELECT the API sends, COMMIT); the transfer runs twice, durable and with
``synchronous_commit=off`` (CPU-bound: WAL flush noise otherwise hides the policy's cost).
pgbench, 4 clients, ``ROUNDS`` alternating runs of ``SECONDS`` each after a
CHECKPOINT and a warm-up; the loss is the median of the on/off ratios of adjacent pairs.
Uses its own database, dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import statistics

import asyncpg

from bench._common import bench_database_url, table
from bench.ledger import N, drop, pgbench, pgbench_script, setup
from tenantry_ledger.infrastructure import sql

SECONDS = 5
ROUNDS = 6
CLIENTS = 4


#: What RLS adds to the app's statements, written out for the RLS-off side: the app's SQL
#: carries no tenant predicate (the policy supplies it, and with it the index on
#: ``(tenant_id, ...)``); without it the superuser's DELETE of idempotency keys scans the
#: whole growing table, which measures a missing index, not RLS.
TENANT_PREDICATES = ("a.id = ANY(", "a.id = v.id", "WHERE key = ANY(", "WHERE id = ")


def explicit_tenant(script: str, tenant_id: str) -> str:
    """The script with ``tenant_id = '<tenant>' AND`` before every tenant-less predicate."""
    out, count = script, 0
    for pred in TENANT_PREDICATES:
        count += out.count(pred)
        alias = "a." if pred.startswith("a.") else ""
        where = "WHERE " if pred.startswith("WHERE") else ""
        out = out.replace(
            pred, f"{where}{alias}tenant_id = '{tenant_id}' AND {pred.removeprefix(where)}"
        )
    assert count, "no tenant predicate to write out: TENANT_PREDICATES is out of date"
    return out


def balance_script(tenant_id: str, schema: str) -> str:
    read = " ".join(sql.BALANCE.split()).replace("$1", "md5('bench-' || (:a)::text)::uuid")
    return "\n".join(
        [
            f"\\set a random(1, {2 * N})",
            "\\startpipeline",
            "BEGIN READ ONLY;",
            f"SELECT set_config('app.tenant_id', '{tenant_id}', true),"
            f" set_config('search_path', '\"{schema}\"', true),"
            " set_config('app.scope', 'tenant', true);",
            "\\endpipeline",
            read + ";",
            "COMMIT;",
        ]
    )


async def checkpoint(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def main() -> None:
    url = bench_database_url("rls")
    info = asyncio.run(setup(url))
    tid, schema, app_dsn = info["tenant_id"], info["schema"], info["app_dsn"]
    transfer = pgbench_script(tid, schema, hot=False)
    # (name, script, PGOPTIONS): the durable transfer is bound by WAL flushes, whose noise
    # hides a CPU cost; the same transfer with synchronous_commit off shows the CPU side.
    cases = [
        ("ledger transfer (one SQL transaction)", transfer, ""),
        ("ledger transfer, synchronous_commit off", transfer, "-c synchronous_commit=off"),
        ("balance read (BEGIN + settings, SELECT, COMMIT)", balance_script(tid, schema), ""),
    ]
    rows: list[list[object]] = []
    try:
        for name, script, pgoptions in cases:
            os.environ["PGOPTIONS"] = pgoptions
            asyncio.run(checkpoint(url))
            pgbench(app_dsn, script, CLIENTS, 2)  # warm-up: caches, plans, autovacuum
            runs: dict[str, list[float]] = {"on": [], "off": []}
            ratios: list[float] = []
            for i in range(ROUNDS):
                # Pairs in alternating order, so a drift over the run (table growth, a
                # checkpoint) falls on both sides alike; the figure is the median pair ratio.
                order = [("on", app_dsn, script), ("off", url, explicit_tenant(script, tid))]
                for side, dsn, text in order if i % 2 == 0 else order[::-1]:
                    runs[side].append(pgbench(dsn, text, CLIENTS, SECONDS)["tps"])
                ratios.append(runs["on"][-1] / runs["off"][-1])
            rows.append(
                [
                    name,
                    " ".join(f"{x:.0f}" for x in runs["off"]),
                    " ".join(f"{x:.0f}" for x in runs["on"]),
                    f"{statistics.median(runs['off']):.0f}",
                    f"{statistics.median(runs['on']):.0f}",
                    f"{1 - statistics.median(ratios):+.1%}",
                ]
            )
    finally:
        os.environ.pop("PGOPTIONS", None)
        asyncio.run(drop(url))
    load = os.getloadavg()[0]
    print(
        table(
            f"RLS cost: pgbench, {CLIENTS} clients, {ROUNDS} alternating rounds of {SECONDS} s"
            f" (load average {load:.1f}; goal: loss <= 5 %)",
            [
                "script",
                "RLS off tps (runs)",
                "RLS on tps (runs)",
                "off median",
                "on median",
                "loss (median of pairs)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
