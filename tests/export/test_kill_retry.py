"""SIGKILL a worker process in the middle of an export: the job's lease runs out, another
worker retries it from a fresh snapshot, and the published file is complete and exact; the
killed attempt's partial file is never offered.

The slow source sleeps 3 ms a row; the engine's ORDER BY makes PostgreSQL compute every row
before COPY emits the first, so the kill lands while the export query runs (status running,
nothing published), not necessarily after bytes reached the staging file."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from tenantry.capabilities.export.service import ExportService
from tenantry.kernel.config import Settings
from tenantry.kernel.platform import Platform
from tests.conftest import MakeTenant
from tests.export import fixtures

ROOT = Path(__file__).resolve().parents[2]
API = "/api/v1/exports"
ROWS = 500  # x 3 ms a row in the slow source: ~1.5 s to count, ~1.5 s to COPY


async def test_killed_worker_job_is_retried_and_file_is_exact(
    client: httpx.AsyncClient,
    platform: Platform,
    settings: Settings,
    make_tenant: MakeTenant,
    export_service: ExportService,
    storage_root: Path,
    tmp_path: Path,
) -> None:
    a = await make_tenant()
    await fixtures.seed_items(platform, a.tenant, ROWS, "k")
    r = await client.post(
        API, headers=a.auth, json={"source": "fixture.slow_items", "format": "csv"}
    )
    assert r.status_code == 202, r.text
    eid = r.json()["id"]
    cfg = {
        "settings": {
            "database": settings.database.model_dump(mode="json"),
            "jobs": {"lease_s": 2, "poll_interval_s": 0.2},
            "exports": {"progress_interval_s": 0.1},
        },
        "storage": str(storage_root),
    }
    log = (tmp_path / "worker.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.export.worker_proc",
        json.dumps(cfg),
        cwd=ROOT,
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        seen: dict[str, Any] = {}
        for _ in range(300):
            seen = (await client.get(f"{API}/{eid}", headers=a.auth)).json()
            if seen["status"] != "queued":
                break
            await asyncio.sleep(0.1)
        assert seen["status"] == "running", (seen, (tmp_path / "worker.log").read_text())
        await asyncio.sleep(0.7)  # well inside the export (count + COPY take ~2 x 1.5 s)
        seen = (await client.get(f"{API}/{eid}", headers=a.auth)).json()
        assert seen["status"] == "running"
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
    # Killed mid-export: nothing to download, no final file, only a staging leftover.
    dead = (await client.get(f"{API}/{eid}", headers=a.auth)).json()
    assert (dead["status"], dead["download_url"]) == ("running", None)
    key = storage_root / str(a.tenant.id) / f"{eid}.csv"
    assert not key.exists()
    await asyncio.sleep(2.2)  # the dead worker's lease runs out
    await platform.jobs.run_pending([a.tenant])
    done = (await client.get(f"{API}/{eid}", headers=a.auth)).json()
    assert (done["status"], done["attempts"], done["rows_total"]) == ("succeeded", 2, ROWS)
    body = (await client.get(done["download_url"])).content.decode()
    rows = list(csv.reader(io.StringIO(body)))[1:]
    want = fixtures.rows_for(a.tenant, ROWS, "k")
    assert [int(r[0]) for r in rows] == list(range(1, ROWS + 1))
    assert [r[1] for r in rows] == [w[2] for w in want]
