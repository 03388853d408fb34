"""The projects module through its HTTP API: projects and tasks, task numbering, status
moves, archived projects, lists with the filter DSL, audit of every change, the
TaskCompleted event in the change's transaction."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson

from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.testing import MakeTenant, TenantFixture

API = "/api/v1/projects"


def _key() -> str:
    return "P" + uuid.uuid4().hex[:6].upper()


async def _project(client: httpx.AsyncClient, t: TenantFixture, **body: Any) -> dict[str, Any]:
    r = await client.post(
        f"{API}/projects", json={"key": _key(), "name": "Website", **body}, headers=t.auth
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def _task(
    client: httpx.AsyncClient, t: TenantFixture, project_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"{API}/projects/{project_id}/tasks", json={"title": "Do it", **body}, headers=t.auth
    )


async def test_projects_and_numbered_tasks(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    project = await _project(client, t, description="the new site")
    assert project["status"] == "active"
    assert project["task_count"] == 0
    first = await _task(client, t, project["id"], priority="high", due_on="2027-01-31")
    assert first.status_code == 201, first.text
    second = await _task(client, t, project["id"], title="Second")
    assert [first.json()["ref"], second.json()["ref"]] == [
        f"{project['key']}-1",
        f"{project['key']}-2",
    ]
    assert first.json()["priority"] == "high"
    assert first.json()["due_on"] == "2027-01-31"

    r = await client.get(f"{API}/projects/{project['id']}", headers=t.auth)
    assert r.status_code == 200
    assert r.json()["task_count"] == 2
    r = await client.get(f"{API}/tasks/{second.json()['id']}", headers=t.auth)
    assert r.status_code == 200
    assert r.json()["title"] == "Second"

    # Concurrent creations get distinct numbers.
    made = await asyncio.gather(*(_task(client, t, project["id"]) for _ in range(8)))
    numbers = sorted(m.json()["number"] for m in made)
    assert numbers == list(range(3, 11))


async def test_duplicate_key_and_bad_input(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    project = await _project(client, t)
    r = await client.post(
        f"{API}/projects", json={"key": project["key"], "name": "Again"}, headers=t.auth
    )
    assert r.status_code == 409
    assert r.json()["type"].endswith("/projects-duplicate-key")
    for body in (
        {"key": "lower", "name": "x"},
        {"key": "AB", "name": "   "},
        {"key": "AB", "name": "x", "tenant_id": str(uuid.uuid4())},
    ):
        r = await client.post(f"{API}/projects", json=body, headers=t.auth)
        assert r.status_code == 422, (body, r.text)
    r = await _task(client, t, project["id"], priority="whenever")
    assert r.status_code == 422
    r = await _task(client, t, str(uuid.uuid4()))
    assert r.status_code == 404
    assert r.json()["type"].endswith("/projects-project-not-found")
    r = await client.get(f"{API}/tasks/{uuid.uuid4()}", headers=t.auth)
    assert r.status_code == 404
    r = await client.get(f"{API}/tasks/not-a-uuid", headers=t.auth)
    assert r.status_code == 422


async def test_status_moves_and_patch_semantics(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    project = await _project(client, t)
    task = (await _task(client, t, project["id"], assignee_id=str(uuid.uuid4()))).json()
    url = f"{API}/tasks/{task['id']}"

    r = await client.patch(url, json={"status": "in_progress"}, headers=t.auth)
    assert r.status_code == 200
    assert r.json()["status"] == "in_progress"
    assert r.json()["assignee_id"] == task["assignee_id"]  # untouched: not sent
    r = await client.patch(url, json={"status": "done"}, headers=t.auth)
    assert r.json()["status"] == "done"
    assert r.json()["completed_at"] is not None
    r = await client.patch(url, json={"status": "in_progress"}, headers=t.auth)
    assert r.status_code == 409
    assert r.json()["type"].endswith("/projects-invalid-transition")
    r = await client.patch(url, json={"status": "todo", "assignee_id": None}, headers=t.auth)
    assert r.status_code == 200, r.text
    assert r.json()["completed_at"] is None
    assert r.json()["assignee_id"] is None
    for bad in ({"title": None}, {"status": None}, {"title": ""}, {"nope": 1}):
        r = await client.patch(url, json=bad, headers=t.auth)
        assert r.status_code == 422, (bad, r.text)


async def test_archived_project_is_read_only(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    project = await _project(client, t)
    task = (await _task(client, t, project["id"])).json()
    r = await client.post(f"{API}/projects/{project['id']}/archive", headers=t.auth)
    assert r.status_code == 200
    assert r.json()["status"] == "archived"
    assert (await client.post(f"{API}/projects/{project['id']}/archive", headers=t.auth)).json()[
        "status"
    ] == "archived"  # idempotent
    for r in (
        await _task(client, t, project["id"]),
        await client.patch(f"{API}/tasks/{task['id']}", json={"title": "x"}, headers=t.auth),
        await client.delete(f"{API}/tasks/{task['id']}", headers=t.auth),
        await client.patch(f"{API}/projects/{project['id']}", json={"name": "x"}, headers=t.auth),
    ):
        assert r.status_code == 409, r.text
        assert r.json()["type"].endswith("/projects-project-archived")
    r = await client.post(f"{API}/projects/{project['id']}/restore", headers=t.auth)
    assert r.json()["status"] == "active"
    r = await client.delete(f"{API}/tasks/{task['id']}", headers=t.auth)
    assert r.status_code == 204
    assert (await client.get(f"{API}/tasks/{task['id']}", headers=t.auth)).status_code == 404


async def test_lists_filter_sort_and_page(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    a = await _project(client, t, name="Alpha")
    b = await _project(client, t, name="Beta")
    for i in range(5):
        await _task(client, t, a["id"], title=f"a{i}", due_on=f"2027-02-0{i + 1}")
    await _task(client, t, b["id"], title="b0", priority="urgent")

    r = await client.get(f"{API}/projects", params={"sort": "name"}, headers=t.auth)
    assert [p["name"] for p in r.json()["items"]] == ["Alpha", "Beta"]
    flt = orjson.dumps(
        {"filters": [{"field": "project_id", "op": "eq", "value": a["id"]}]}
    ).decode()
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"filter": flt, "sort": "-due_on", "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        r = await client.get(f"{API}/tasks", params=params, headers=t.auth)
        assert r.status_code == 200, r.text
        seen += [x["title"] for x in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ["a4", "a3", "a2", "a1", "a0"]
    r = await client.post(
        f"{API}/tasks/search",
        json={"filters": [{"field": "priority", "op": "eq", "value": "urgent"}]},
        headers=t.auth,
    )
    assert r.status_code == 200, r.text
    assert [x["ref"] for x in r.json()["items"]] == [f"{b['key']}-1"]
    r = await client.get(
        f"{API}/tasks",
        params={"filter": '{"filters": [{"field": "tenant_id", "op": "eq", "value": "x"}]}'},
        headers=t.auth,
    )
    assert r.status_code == 422


async def test_every_change_is_audited_and_completion_published(
    client: httpx.AsyncClient, make_tenant: MakeTenant, platform: Platform
) -> None:
    t = await make_tenant()
    project = await _project(client, t)
    await client.patch(f"{API}/projects/{project['id']}", json={"name": "Renamed"}, headers=t.auth)
    task = (await _task(client, t, project["id"])).json()
    await client.patch(f"{API}/tasks/{task['id']}", json={"status": "done"}, headers=t.auth)
    other = (await _task(client, t, project["id"])).json()
    await client.delete(f"{API}/tasks/{other['id']}", headers=t.auth)
    await client.post(f"{API}/projects/{project['id']}/archive", headers=t.auth)
    await client.post(f"{API}/projects/{project['id']}/restore", headers=t.auth)

    r = await client.get("/api/v1/audit/events?limit=200", headers=t.auth)
    assert r.status_code == 200, r.text
    records = [e for e in r.json()["items"] if e["action"].startswith("projects.")]
    assert sorted(e["action"] for e in records) == sorted(
        [
            "projects.project.create",
            "projects.project.update",
            "projects.task.create",
            "projects.task.create",
            "projects.task.update",
            "projects.task.delete",
            "projects.project.archive",
            "projects.project.restore",
        ]
    )
    update = next(e for e in records if e["action"] == "projects.task.update")
    assert update["before"] == {"status": "todo"}
    assert update["after"] == {"status": "done"}
    assert update["actor"]

    with tenant_scope(t.tenant):
        async with platform.db.unit_of_work(readonly=True) as uow:
            names = [
                r["name"] for r in await uow.fetch("SELECT name FROM outbox ORDER BY created_at")
            ]
    assert names.count("projects.TaskCompleted.v1") == 1
