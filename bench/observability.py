"""Overhead of the full observability middleware (span, JSON log line, Prometheus histogram,
SLO minute counters) on a trivial endpoint: the same app with and without it, each a real
uvicorn process (1 worker) driven by wrk; runs alternate off/on to spread machine noise.

Goal (issue 6): < 10 % throughput loss. Besides req/s (noisy on a shared machine) each run
reports the server process's CPU time per request (from /proc/<pid>/stat) and the load average
when the run ended. A second part calls the same two apps in process (no server, no network:
an ASGI call with a GET /bench/ping scope), both built in one process and called in
alternating batches, so machine noise falls on both alike; the best batch of each is the
least disturbed by other processes. Each batch ends with the drain of the request records the
middleware deferred (what the server's one-second flusher does), inside the timing.

    .venv/bin/python -m bench.observability [--duration 8] [--rounds 2] [--connections 32]
                                            [--instructions 3000]    # + callgrind counts
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(port: int, pid: int, duration: int, connections: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/bench/ping"
    subprocess.run(["wrk", "-t1", "-c8", "-d2s", url], capture_output=True, check=True)
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    cpu = cpu_seconds(pid) - cpu_before
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert errors is None, out
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "cpu_us": cpu * 1e6 / max(requests, 1),
        "load": os.getloadavg()[0],
    }


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


#: The ASGI scope of ``GET /bench/ping`` for the in-process parts (copied per call).
PING_SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/bench/ping",
    "raw_path": b"/bench/ping",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", PORT),
}


async def receive() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(_message: object) -> None:
    return None


def inprocess_child(n: int, batches: int, out: str) -> None:
    """Both bench apps (middleware off and on) built in this one process, called in
    alternating batches of ``n`` in-process requests; writes µs/request per batch."""
    from bench.obs_app import make_app
    from tenantry.kernel.observability.accounting import drain_all

    os.environ["BENCH_OBS"] = "off"
    apps = {"off": make_app()}
    os.environ["BENCH_OBS"] = "on"
    apps["on"] = make_app()
    scope = PING_SCOPE

    async def run() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {"off": [], "on": []}
        for app in apps.values():
            for _ in range(2000):
                await app(dict(scope), receive, send)
        for _ in range(batches):
            for mode, app in apps.items():
                t0 = time.perf_counter()
                for _ in range(n):
                    await app(dict(scope), receive, send)
                # What the server's one-second flusher does with the batch's deferred
                # request records (histogram, SLO minutes, log lines): part of the cost.
                drain_all()
                times[mode].append((time.perf_counter() - t0) / n * 1e6)
        return times

    times = asyncio.run(run())
    Path(out).write_text("\n".join(" ".join(f"{x:.2f}" for x in times[m]) for m in ("off", "on")))


def inprocess(n: int, batches: int) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        subprocess.run(
            [sys.executable, "-m", "bench.observability", "--child", str(n), str(batches), f.name],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,  # the request log lines
            check=True,
        )
        off, on = (
            [float(x) for x in line.split()] for line in Path(f.name).read_text().split("\n")
        )
    print(
        f"\nin process (one process, both apps, {batches} alternating batches of {n} ASGI "
        f"calls; load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'middleware':10} {'best µs/req':>12} {'median µs/req':>14}")
    for mode, xs in (("off", off), ("on", on)):
        print(f"{mode:10} {min(xs):12.1f} {statistics.median(xs):14.1f}")
    print(
        f"in-process overhead: +{min(on) - min(off):.1f} µs per request "
        f"({(min(on) / min(off) - 1) * 100:.1f} %, best vs best), "
        f"+{statistics.median(on) - statistics.median(off):.1f} µs "
        f"({(statistics.median(on) / statistics.median(off) - 1) * 100:.1f} %, medians)"
    )


def count_child(mode: str, n: int) -> None:
    """``n`` in-process requests (after 500 of warm-up) to the app of ``mode``, then the
    drain of deferred request records: what ``instructions`` counts."""
    from bench.obs_app import make_app
    from tenantry.kernel.observability import logs
    from tenantry.kernel.observability.accounting import drain_all

    os.environ["BENCH_OBS"] = mode
    logs.configure("json", "INFO")  # both modes alike: only the middleware differs
    app = make_app()
    scope = PING_SCOPE

    async def run() -> None:
        for _ in range(500 + n):
            await app(dict(scope), receive, send)
        drain_all()

    asyncio.run(run())


def instructions(n: int) -> None:
    """Instructions per in-process request, middleware off and on, counted by valgrind's
    callgrind (repeatable whatever else the machine does, unlike time): each mode runs once
    with 0 and once with ``n`` requests after the same warm-up, and the difference over ``n``
    is the per-request count. Four runs under valgrind, two at a time: ~2-4 minutes."""
    import concurrent.futures

    def count(mode: str, k: int) -> int:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                "-m",
                "bench.observability",
                "--count",
                mode,
                str(k),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            check=True,
        )
        m = re.search(r"Collected : (\d+)", out.stderr)
        assert m is not None, out.stderr[-2000:]
        return int(m.group(1))

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = {(m, k): pool.submit(count, m, k) for m in ("off", "on") for k in (0, n)}
        total = {key: f.result() for key, f in runs.items()}
    per = {m: (total[(m, n)] - total[(m, 0)]) / n for m in ("off", "on")}
    print(f"\ninstructions per in-process request (callgrind, {n} requests after 500 warm-up)")
    print(f"{'middleware':10} {'instructions':>14}")
    for mode in ("off", "on"):
        print(f"{mode:10} {per[mode]:14,.0f}")
    print(
        f"instruction overhead: +{per['on'] - per['off']:,.0f} per request "
        f"({(per['on'] / per['off'] - 1) * 100:.1f} %)"
    )


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        inprocess_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--count":
        count_child(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--inprocess-n", type=int, default=3_000)
    ap.add_argument("--inprocess-batches", type=int, default=20)
    ap.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="also count instructions per request under callgrind with N requests (e.g. 3000)",
    )
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
                results[mode].append(run_wrk(PORT, proc.pid, args.duration, args.connections))
            finally:
                proc.terminate()
                proc.wait(30)
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s GET /bench/ping, uvicorn 1 worker, "
        f"{args.rounds} alternating rounds"
    )
    print(
        f"{'middleware':10} {'req/s (each run)':>24} {'mean':>6} {'median':>6} {'p50 ms':>6} "
        f"{'p99 ms':>6} {'CPU µs/req (each run)':>26} {'median':>6} {'load (each run)':>18}"
    )
    rps: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    for mode, runs in results.items():
        rps[mode] = [r["rps"] for r in runs]
        cpu[mode] = statistics.median(r["cpu_us"] for r in runs)
        p50 = sum(r["p50"] for r in runs) / len(runs)
        p99 = sum(r["p99"] for r in runs) / len(runs)
        each_rps = " ".join(f"{x:.0f}" for x in rps[mode])
        each_cpu = " ".join(f"{r['cpu_us']:.0f}" for r in runs)
        each_load = " ".join(f"{r['load']:.1f}" for r in runs)
        print(
            f"{mode:10} {each_rps:>24} "
            f"{statistics.mean(rps[mode]):6.0f} {statistics.median(rps[mode]):6.0f} "
            f"{p50:6.2f} {p99:6.2f} {each_cpu:>26} {cpu[mode]:6.0f} {each_load:>18}"
        )
    mean_loss = 1 - statistics.mean(rps["on"]) / statistics.mean(rps["off"])
    median_loss = 1 - statistics.median(rps["on"]) / statistics.median(rps["off"])
    print(
        f"throughput loss: {mean_loss * 100:.1f} % (means), {median_loss * 100:.1f} % (medians); "
        f"server CPU per request +{(cpu['on'] / cpu['off'] - 1) * 100:.1f} % (medians) "
        "(goal < 10 %)"
    )
    inprocess(args.inprocess_n, args.inprocess_batches)
    if args.instructions:
        instructions(args.instructions)


if __name__ == "__main__":
    main()
