"""Overhead of the full observability middleware (span, JSON log line, Prometheus histogram,
SLO minute counters) on a trivial endpoint: the same app with and without it, each a real
uvicorn process (1 worker) driven by wrk; runs alternate off/on to spread machine noise.

Goal (issue 6): < 10 % throughput loss.

    .venv/bin/python bench/observability.py [--duration 8] [--rounds 2] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench._common import bench_platform, bench_settings

ROOT = Path(__file__).resolve().parents[1]
PORT = 8765


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def to_ms(v: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    assert m, v
    x = float(m.group(1))
    return {"us": x / 1000, "ms": x, "s": x * 1000}[m.group(2)]


def run_wrk(port: int, duration: int, connections: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/bench/ping"
    subprocess.run(["wrk", "-t1", "-c8", "-d2s", url], capture_output=True, check=True)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert errors is None, out
    return {"rps": rps, "p50": p50, "p99": p99}


def serve(mode: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_OBS": mode}
    env.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/tenantry_bench")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "bench.obs_app:make_app",
            "--port",
            str(PORT),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()

    async def prepare() -> None:
        platform, _ = await bench_platform(bench_settings())
        await platform.close()

    asyncio.run(prepare())
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            proc = serve(mode)
            try:
                wait_ready(PORT)
                results[mode].append(run_wrk(PORT, args.duration, args.connections))
            finally:
                proc.terminate()
                proc.wait(30)
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s GET /bench/ping, uvicorn 1 worker, "
        f"{args.rounds} alternating rounds"
    )
    print(
        f"{'middleware':12} {'req/s (each run)':>26} {'mean req/s':>11} {'p50 ms':>7} {'p99 ms':>7}"
    )
    mean = {}
    for mode, runs in results.items():
        mean[mode] = sum(r["rps"] for r in runs) / len(runs)
        each = " ".join(f"{r['rps']:.0f}" for r in runs)
        p50 = sum(r["p50"] for r in runs) / len(runs)
        p99 = sum(r["p99"] for r in runs) / len(runs)
        print(f"{mode:12} {each:>26} {mean[mode]:11.0f} {p50:7.2f} {p99:7.2f}")
    print(f"overhead: {(1 - mean['on'] / mean['off']) * 100:.1f} % of throughput (goal < 10 %)")


if __name__ == "__main__":
    main()
