"""Old vs new POST /transactions in one run: two `tenantry serve` processes, one per code
tree, each on a bench database of its own set up by its own code, measured alternately
(old, new, old, new, ...) so both see the same minutes of a shared machine.

    BENCH_OLD_VENV=/path/to/old/venv BENCH_OLD_TREE=/path/to/old/checkout \\
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.ledger_ab

The old tree needs its own virtualenv (its entry points name its own modules). Each round is
wrk with ``BENCH_AB_CONNS`` connections (default 16) for ``BENCH_AB_SECONDS`` (5), repeated
``BENCH_AB_ROUNDS`` times (6) per side; the servers run as in bench/ledger.py (b): outbox
relay off, the rest default (the new tree's audit chainer on), except the pool: at most
``BENCH_AB_POOL`` connections per server (default 10; the PostgreSQL server is shared).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench._common import bench_database_url, free_port, table
from bench.ledger import API, drop, process, server_env, timed_wrk, token, transfer_lua

ROOT = Path(__file__).resolve().parents[1]
SETUP = "import asyncio, json, bench.ledger as b; print(json.dumps(asyncio.run(b.setup({url!r}))))"


def setup_with(python: str, tree: Path, url: str) -> None:
    """Create and seed the bench database with that tree's own code (its migrations)."""
    out = subprocess.run(
        [python, "-c", SETUP.format(url=url)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"setup in {tree} failed: {out.stderr[-2000:]}")
    json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    old_venv = Path(os.environ["BENCH_OLD_VENV"])
    old_tree = Path(os.environ["BENCH_OLD_TREE"])
    conns = int(os.environ.get("BENCH_AB_CONNS", "16"))
    seconds = int(os.environ.get("BENCH_AB_SECONDS", "5"))
    rounds = int(os.environ.get("BENCH_AB_ROUNDS", "6"))
    os.environ["TENANTRY_DATABASE__POOL_MAX"] = os.environ.get("BENCH_AB_POOL", "10")
    # BENCH_AB_CHAIN=false: the new server leaves chaining to another process (a worker), as
    # both servers leave the outbox relay to one.
    new_env = {"TENANTRY_AUDIT__CHAIN_IN_PROCESS": os.environ.get("BENCH_AB_CHAIN", "true")}
    sides = {
        "old": (str(old_venv / "bin" / "python"), old_tree, str(old_venv / "bin" / "tenantry")),
        "new": (sys.executable, ROOT, str(Path(sys.executable).with_name("tenantry"))),
    }
    urls = {name: bench_database_url(f"ab_{name}") for name in sides}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    try:
        for name, (python, tree, _) in sides.items():
            setup_with(python, tree, urls[name])
        ports = {name: free_port() for name in sides}
        with (
            process(
                [sides["old"][2], "serve", "--port", str(ports["old"])],
                {**server_env(urls["old"]), "PYTHONPATH": str(old_tree / "src")},
                f"http://127.0.0.1:{ports['old']}/healthz",
            ) as old_srv,
            process(
                [sides["new"][2], "serve", "--port", str(ports["new"])],
                {**server_env(urls["new"]), **new_env},
                f"http://127.0.0.1:{ports['new']}/healthz",
            ) as new_srv,
        ):
            pids = {"old": old_srv.pid, "new": new_srv.pid}
            bases = {name: f"http://127.0.0.1:{ports[name]}" for name in sides}
            luas = {name: transfer_lua(token(bases[name]), hot=False) for name in sides}
            for name in sides:  # warm-up
                timed_wrk(pids[name], bases[name] + f"{API}/transactions", luas[name], 4, 2)
            for r in range(rounds):
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                for name in order:
                    w = timed_wrk(
                        pids[name], bases[name] + f"{API}/transactions", luas[name], conns, seconds
                    )
                    results[name].append(w)
                    print(f"round {r} {name}: {w['rps']:.0f}/s ({w['errors']:.0f} errors)")
    finally:
        for url in urls.values():
            asyncio.run(drop(url))
    rows: list[list[object]] = []
    med = {}
    for name in sides:
        rps = [w["rps"] for w in results[name]]
        med[name] = statistics.median(rps)
        errors = sum(w["errors"] for w in results[name])
        rows.append(
            [
                f"POST /transactions, {name} ({errors:.0f} errors)",
                conns,
                f"{med[name]:.0f}",
                " ".join(f"{x:.0f}" for x in rps),
                f"{statistics.median(w['p50'] for w in results[name]):.1f}",
                f"{statistics.median(w['p95'] for w in results[name]):.1f}",
                f"{statistics.median(w['cpu_ms'] for w in results[name]):.2f}",
            ]
        )
    print(
        table(
            "Ledger old vs new, interleaved (one uvicorn worker each; 2 shared cores)",
            ["case", "conns", "median/s", "rounds/s", "p50 ms", "p95 ms", "srv CPU ms"],
            rows,
        )
    )
    print(f"new / old (medians): {med['new'] / med['old']:.1%}")


if __name__ == "__main__":
    main()
