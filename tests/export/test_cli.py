"""``tenantry exports list|show`` as a user runs them: a real process on the test database."""

from __future__ import annotations

import json

import httpx

from tenantry.kernel.config import Settings
from tenantry.kernel.platform import Platform
from tests.cli import cli as run
from tests.conftest import MakeTenant


async def test_exports_list_and_show_watch(
    settings: Settings, platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    a = await make_tenant()
    r = await client.post(
        "/api/v1/exports", headers=a.auth, json={"source": "exports.history", "format": "csv"}
    )
    eid = r.json()["id"]
    await platform.jobs.run_pending([a.tenant])
    out = run(settings, "exports", "list", "--tenant", a.tenant.slug, "--json")
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)
    assert [(e["id"], e["status"]) for e in items] == [(eid, "succeeded")]
    out = run(settings, "exports", "show", eid, "--tenant", a.tenant.slug, "--watch")
    assert out.returncode == 0, out.stderr
    assert '"status": "succeeded"' in out.stdout
