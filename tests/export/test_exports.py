"""Exports end to end on real PostgreSQL: every format parsed back and compared with the
query, isolation, bad input, signed links, idempotency, cancel, schedules, cleanup."""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from tenantry.capabilities.export import links
from tenantry.capabilities.export.formats import pdf_rows_per_page
from tenantry.capabilities.export.service import ExportService
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.model import Tenant
from tests.conftest import MakeTenant, TenantFixture
from tests.export import fixtures

API = "/api/v1/exports"
N = 240


async def expected(
    platform: Platform, tenant: Tenant, where: str = "", order: str = "id"
) -> list[tuple[Any, ...]]:
    with tenant_scope(tenant):
        async with platform.db.unit_of_work(readonly=True) as uow:
            rows = await uow.fetch(f"{fixtures.QUERY} {where} ORDER BY {order}")
    return [tuple(r) for r in rows]


async def run_worker(platform: Platform, tenant: Tenant) -> None:
    await platform.jobs.run_pending([tenant])


async def export(
    client: httpx.AsyncClient,
    platform: Platform,
    t: TenantFixture,
    body: dict[str, Any],
) -> dict[str, Any]:
    r = await client.post(API, headers=t.auth, json=body)
    assert r.status_code == 202, r.text
    await run_worker(platform, t.tenant)
    r = await client.get(f"{API}/{r.json()['id']}", headers=t.auth)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def download(client: httpx.AsyncClient, e: dict[str, Any]) -> bytes:
    assert e["status"] == "succeeded", e
    assert e["download_url"], e
    r = await client.get(e["download_url"])  # no bearer: the signed link is enough
    assert r.status_code == 200, r.text
    return r.content


@pytest.fixture
async def two(
    platform: Platform, make_tenant: MakeTenant, export_service: ExportService
) -> tuple[TenantFixture, TenantFixture]:
    a, b = await make_tenant("shared"), await make_tenant("schema")
    await fixtures.seed_items(platform, a.tenant, N, "a")
    await fixtures.seed_items(platform, b.tenant, 50, "b")
    return a, b


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, datetime):
        return v.astimezone(UTC).isoformat(sep=" ")
    return str(v)


async def test_every_format_matches_the_query(
    client: httpx.AsyncClient, platform: Platform, two: tuple[TenantFixture, TenantFixture]
) -> None:
    a, _ = two
    want = await expected(platform, a.tenant)
    assert len(want) == N
    body = {"source": "fixture.items"}

    e = await export(client, platform, a, {**body, "format": "csv"})
    assert (e["rows_total"], e["rows_done"], e["progress"]) == (N, N, 100.0)
    assert e["duration_s"] is not None
    rows = list(csv.reader(io.StringIO((await download(client, e)).decode())))
    assert rows[0] == [c.name for c in fixtures.COLUMNS]
    got = []
    for r in rows[1:]:
        at = datetime.fromisoformat(r[5]).astimezone(UTC).isoformat(sep=" ")
        got.append([*r[:5], at, *r[6:]])
    assert got == [[_csv_value(v) for v in row] for row in want]

    e = await export(client, platform, a, {**body, "format": "parquet"})
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(await download(client, e)))
    assert table.column_names == [c.name for c in fixtures.COLUMNS]
    parsed = [tuple(d.values()) for d in table.to_pylist()]
    assert parsed == [(*row[:7], str(row[7])) for row in want]

    e = await export(client, platform, a, {**body, "format": "xlsx"})
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(await download(client, e)), read_only=True)
    sheet = list(wb.worksheets[0].iter_rows(values_only=True))
    assert list(sheet[0]) == [c.name for c in fixtures.COLUMNS]
    for got_row, row in zip(sheet[1:], want, strict=True):
        i, name, amount, qty, ok, at, day, ref = row
        assert got_row[0] == i
        assert got_row[1] == name
        assert got_row[2] == (None if amount is None else float(amount))
        assert got_row[3] == qty
        assert got_row[4] == ok
        # Excel stores date-times as fractions of days: millisecond precision.
        assert abs(got_row[5] - at.astimezone(UTC).replace(tzinfo=None)) < timedelta(milliseconds=1)
        assert got_row[6] == datetime(day.year, day.month, day.day)
        assert got_row[7] == str(ref)
    wb.close()

    e = await export(client, platform, a, {**body, "format": "pdf", "columns": ["id", "name"]})
    from pypdf import PdfReader

    pdf = PdfReader(io.BytesIO(await download(client, e)))
    assert len(pdf.pages) == math.ceil(N / pdf_rows_per_page())
    first = pdf.pages[0].extract_text()
    assert "name" in first
    assert "Page 1" in first
    for i in (1, 2, 3, 5):
        assert f"a-{i}" in first
    assert "Page 2" in pdf.pages[1].extract_text()


async def test_filters_sort_and_columns(
    client: httpx.AsyncClient, platform: Platform, two: tuple[TenantFixture, TenantFixture]
) -> None:
    a, _ = two
    doc = {
        "filters": [
            {"field": "amount", "op": "gte", "value": "0"},
            {"field": "ok", "op": "eq", "value": True},
            {"field": "day", "op": "lt", "value": "2026-06-01"},
            {"field": "name", "op": "icontains", "value": "A-1"},
        ],
        "sort": {"field": "amount", "dir": "desc"},
    }
    e = await export(
        client,
        platform,
        a,
        {
            "source": "fixture.items",
            "format": "parquet",
            "columns": ["id", "amount"],
            "filters": doc,
        },
    )
    import pyarrow.parquet as pq

    got = [
        tuple(d.values()) for d in pq.read_table(io.BytesIO(await download(client, e))).to_pylist()
    ]
    want = await expected(
        platform,
        a.tenant,
        "WHERE amount >= 0 AND ok AND day < '2026-06-01' AND name ILIKE '%a-1%'",
        "amount DESC, id",
    )
    assert got == [(r[0], r[2]) for r in want]
    assert got
    assert e["rows_total"] == len(got)


async def test_isolation_of_exports(
    client: httpx.AsyncClient, platform: Platform, two: tuple[TenantFixture, TenantFixture]
) -> None:
    a, b = two
    ea = await export(client, platform, a, {"source": "fixture.items", "format": "csv"})
    eb = await export(client, platform, b, {"source": "fixture.items", "format": "csv"})
    # A's file holds A's rows only (B's names start with "b-").
    body = (await download(client, ea)).decode()
    assert "b-1" not in body
    names = [r[1] for r in list(csv.reader(io.StringIO(body)))[1:]]
    assert len(names) == N
    assert all(n.startswith("a-") for n in names)
    body_b = (await download(client, eb)).decode()
    assert [r[1][:2] for r in list(csv.reader(io.StringIO(body_b)))[1:]] == ["b-"] * 50
    # B cannot read, list, cancel A's export.
    assert (await client.get(f"{API}/{ea['id']}", headers=b.auth)).status_code == 404
    listed = (await client.get(API, headers=b.auth)).json()["items"]
    assert ea["id"] not in {x["id"] for x in listed}
    assert (await client.post(f"{API}/{ea['id']}/cancel", headers=b.auth)).status_code == 404
    # B presenting A's link while authenticated as B: refused.
    r = await client.get(ea["download_url"], headers=b.auth)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    # B's valid token on A's export id: refused (the token names its export).
    token_b = eb["download_url"].split("token=")[1]
    r = await client.get(f"{API}/{ea['id']}/download?token={token_b}")
    assert r.status_code == 403


async def test_download_links_expire_and_resist_tampering(
    client: httpx.AsyncClient,
    platform: Platform,
    make_tenant: MakeTenant,
    export_service: ExportService,
) -> None:
    a = await make_tenant()
    await fixtures.seed_items(platform, a.tenant, 5, "x")
    e = await export(client, platform, a, {"source": "fixture.items", "format": "csv"})
    eid = UUID(e["id"])
    token = e["download_url"].split("token=")[1]
    payload, mac = token.split(".")
    forged = links._b64(f"{a.tenant.id}.{eid}.{int(time.time()) + 10**6}".encode())
    for bad in (f"{payload}.{mac[:-2]}AA", f"{forged}.{mac}", "garbage", f"{payload}."):
        r = await client.get(f"{API}/{eid}/download", params={"token": bad})
        assert r.status_code == 403, (bad, r.text)
        assert r.json()["type"].endswith("invalid-download-link")
    old = links.sign(export_service.link_key, a.tenant.id, eid, int(time.time()) - 1)
    r = await client.get(f"{API}/{eid}/download", params={"token": old})
    assert r.status_code == 410
    assert r.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"{API}/{eid}/download")).status_code == 422
    assert (await client.get(f"{API}/{eid}/download", params={"token": token})).status_code == 200


async def test_bad_input_is_a_problem_and_queues_nothing(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    a = await make_tenant()

    async def counts() -> tuple[int, int, int]:
        with tenant_scope(a.tenant):
            async with platform.db.unit_of_work() as uow:
                return (
                    await uow.fetchval("SELECT count(*) FROM exports"),
                    await uow.fetchval("SELECT count(*) FROM jobs"),
                    await uow.fetchval("SELECT count(*) FROM job_schedules"),
                )

    before = await counts()
    ok = {"source": "fixture.items", "format": "csv"}
    bad_bodies = [
        ({**ok, "source": "nope.nothing"}, "source"),
        ({**ok, "format": "docx"}, "format"),
        ({**ok, "columns": ["id", "secret"]}, "columns"),
        ({**ok, "filters": {"filters": [{"field": "name", "op": "regex", "value": "x"}]}}, None),
        ({**ok, "filters": {"filters": [{"field": "tenant_id", "op": "eq", "value": "x"}]}}, None),
        ({**ok, "filters": {"filters": [{"field": "qty", "op": "gt", "value": "many"}]}}, None),
        ({**ok, "filters": {"filters": [{"field": "id", "op": "in", "value": []}]}}, None),
        ({**ok, "filters": {"sort": {"field": "id; DROP TABLE x", "dir": "asc"}}}, None),
        ({**ok, "filters": {"where": "1=1"}}, None),
        ({**ok, "tenant_id": str(a.tenant.id)}, None),
        ({**ok, "notify": {"email": "not-an-email"}}, None),
    ]
    for body, field in bad_bodies:
        r = await client.post(API, headers=a.auth, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        if field:
            assert r.json()["errors"][0]["field"] == field
    sched = {**ok, "timezone": "UTC"}
    for cron, tz in (("0 0 30 2 *", "UTC"), ("61 * * * *", "UTC"), ("* * * * *", "Nowhere/X")):
        r = await client.post(
            f"{API}/schedules", headers=a.auth, json={**sched, "cron": cron, "timezone": tz}
        )
        assert r.status_code == 422, (cron, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert await counts() == before


async def test_idempotency_key_and_cancel(
    client: httpx.AsyncClient, platform: Platform, make_tenant: MakeTenant
) -> None:
    a = await make_tenant()
    body = {"source": "fixture.items", "format": "csv"}
    h = {**a.auth, "Idempotency-Key": "k-1"}
    r1 = await client.post(API, headers=h, json=body)
    r2 = await client.post(API, headers=h, json=body)
    assert (r1.status_code, r2.status_code) == (202, 200)
    assert r1.json()["id"] == r2.json()["id"]
    r3 = await client.post(API, headers=h, json={**body, "format": "xlsx"})
    assert r3.status_code == 409
    # free plan: one export at a time
    r4 = await client.post(API, headers=a.auth, json=body)
    assert r4.status_code == 429
    assert r4.headers["Retry-After"]
    eid = r1.json()["id"]
    r = await client.post(f"{API}/{eid}/cancel", headers=a.auth)
    assert r.json()["status"] == "cancelled"
    await run_worker(platform, a.tenant)
    e = (await client.get(f"{API}/{eid}", headers=a.auth)).json()
    assert (e["status"], e["download_url"]) == ("cancelled", None)


async def test_schedule_runs_and_cleanup(
    caplog: pytest.LogCaptureFixture,
    client: httpx.AsyncClient,
    platform: Platform,
    make_tenant: MakeTenant,
    export_service: ExportService,
    storage_root: Path,
) -> None:
    caplog.set_level(logging.INFO, logger="tenantry.notifications")
    a = await make_tenant()
    await fixtures.seed_items(platform, a.tenant, 12, "s")
    r = await client.post(
        f"{API}/schedules",
        headers=a.auth,
        json={
            "source": "fixture.items",
            "format": "csv",
            "cron": "30 7 * * 1-5",
            "timezone": "Europe/Paris",
            "notify": {"email": "ops@example.com"},
        },
    )
    assert r.status_code == 201, r.text
    s = r.json()
    nxt = datetime.fromisoformat(s["next_run_at"])
    assert nxt > datetime.now(UTC)
    with tenant_scope(a.tenant):
        async with platform.db.unit_of_work() as uow:
            await uow.execute(
                "UPDATE job_schedules SET next_run_at = now() WHERE id = $1", UUID(s["id"])
            )
    await run_worker(platform, a.tenant)  # fires: queues the run ...
    await run_worker(platform, a.tenant)  # ... and runs it
    runs = (await client.get(f"{API}/schedules/{s['id']}/runs", headers=a.auth)).json()["items"]
    assert len(runs) == 1
    assert (runs[0]["status"], runs[0]["rows_total"]) == ("succeeded", 12)
    assert (await client.get(f"{API}/schedules", headers=a.auth)).json()["items"][0]["id"] == s[
        "id"
    ]
    # The notice went through the notifications module; with no SMTP host configured its
    # mailer writes the email to the log instead of sending it.
    notices = [r.getMessage() for r in caplog.records if r.name == "tenantry.notifications"]
    assert any("to=ops@example.com" in m and "Export succeeded" in m for m in notices), notices
    # Cleanup: an expired file is deleted and its link answers 410/404, not a partial file.
    key = f"{a.tenant.id}/{runs[0]['id']}.csv"
    assert (storage_root / key).is_file()
    with tenant_scope(a.tenant):
        async with platform.db.unit_of_work() as uow:
            await uow.execute("UPDATE exports SET expires_at = now() - interval '1 s'")
            await uow.execute(
                "UPDATE job_schedules SET next_run_at = now() WHERE name = 'exports.cleanup'"
            )
    await run_worker(platform, a.tenant)  # fires the cleanup schedule
    await run_worker(platform, a.tenant)
    assert not (storage_root / key).exists()
    r = await client.get(runs[0]["download_url"])
    assert r.status_code in (404, 410)
    d = (await client.delete(f"{API}/schedules/{s['id']}", headers=a.auth)).json()
    assert d["enabled"] is False


async def test_xlsx_splits_sheets_and_limits(
    client: httpx.AsyncClient,
    platform: Platform,
    make_tenant: MakeTenant,
    export_service: ExportService,
) -> None:
    a = await make_tenant()
    await fixtures.seed_items(platform, a.tenant, 25, "x")
    export_service.settings.xlsx_rows_per_sheet = 10
    try:
        e = await export(client, platform, a, {"source": "fixture.items", "format": "xlsx"})
    finally:
        export_service.settings.xlsx_rows_per_sheet = 1_048_575
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(await download(client, e)), read_only=True)
    sizes = [len(list(ws.iter_rows(values_only=True))) for ws in wb.worksheets]
    wb.close()
    assert sizes == [11, 11, 6]  # header + rows on every sheet
    limits = export_service.settings.plans["free"]
    old = limits.max_rows
    limits.max_rows = 20
    try:
        e = await export(client, platform, a, {"source": "fixture.items", "format": "csv"})
    finally:
        limits.max_rows = old
    assert e["status"] == "failed"
    assert "limit" in e["error"]
    assert e["download_url"] is None
