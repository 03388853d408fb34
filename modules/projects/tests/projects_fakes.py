"""In-memory fakes for ``ProjectsService``: the platform's unit-of-work fakes
(``tenantry.testing.fakes``) over the module's ``State``, and the repository's behaviour on
dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias
from uuid import UUID

from tenantry.testing import fakes
from tenantry_projects.application.ports import Page, Row


@dataclass
class State:
    projects: dict[UUID, Row] = field(default_factory=dict)
    tasks: dict[UUID, Row] = field(default_factory=dict)


FakeUnitOfWork: TypeAlias = fakes.FakeUnitOfWork[State]


class FakeUnits(fakes.FakeUnits[State]):
    """The unit-of-work factory (tenantry.testing.fakes) over an empty ``State``."""

    def __init__(self) -> None:
        super().__init__(State())


def _now() -> datetime:
    return datetime.now(UTC)


class FakeProjectsRepository:
    """``ProjectsRepository[FakeUnitOfWork]``: the SQL repository's behaviour on dicts."""

    async def create_project(self, uow: FakeUnitOfWork, values: Row) -> Row | None:
        state = uow.write()
        if any(p["key"] == values["key"] for p in state.projects.values()):
            return None
        row = {**values, "status": "active", "task_count": 0, "created_at": _now(),
               "updated_at": _now()}  # fmt: skip
        state.projects[values["id"]] = row
        return dict(row)

    async def project(
        self, uow: FakeUnitOfWork, project_id: UUID, *, lock: bool = False
    ) -> Row | None:
        row = uow.state.projects.get(project_id)
        return dict(row) if row else None

    async def update_project(
        self, uow: FakeUnitOfWork, project_id: UUID, name: str | None, description: str | None
    ) -> Row | None:
        row = uow.write().projects.get(project_id)
        if row is None:
            return None
        row.update(
            {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        )
        return dict(row)

    async def set_project_status(
        self, uow: FakeUnitOfWork, project_id: UUID, status: str
    ) -> Row | None:
        row = uow.write().projects.get(project_id)
        if row is None:
            return None
        row["status"] = status
        return dict(row)

    async def next_task_number(
        self, uow: FakeUnitOfWork, project_id: UUID
    ) -> tuple[int, str] | None:
        row = uow.write().projects.get(project_id)
        if row is None or row["status"] != "active":
            return None
        row["task_count"] += 1
        return row["task_count"], row["key"]

    async def create_task(self, uow: FakeUnitOfWork, values: Row) -> Row:
        row = {**values, "status": "todo", "created_at": _now(), "updated_at": _now(),
               "completed_at": None}  # fmt: skip
        uow.write().tasks[values["id"]] = row
        return dict(row)

    async def task(self, uow: FakeUnitOfWork, task_id: UUID, *, lock: bool = False) -> Row | None:
        row = uow.state.tasks.get(task_id)
        if row is None:
            return None
        project = uow.state.projects[row["project_id"]]
        return {**row, "project_key": project["key"], "project_status": project["status"]}

    async def update_task(self, uow: FakeUnitOfWork, task_id: UUID, values: Row) -> None:
        row = uow.write().tasks[task_id]
        for k in ("title", "description", "status", "priority", "assignee_id", "due_on"):
            row[k] = values[k]
        row["completed_at"] = (row["completed_at"] or _now()) if row["status"] == "done" else None

    async def delete_task(self, uow: FakeUnitOfWork, task_id: UUID) -> None:
        del uow.write().tasks[task_id]

    async def list_projects(self, uow: FakeUnitOfWork, query: Any) -> Page:
        return [dict(p) for p in uow.state.projects.values()], None

    async def list_tasks(self, uow: FakeUnitOfWork, query: Any) -> Page:
        return [r for t in uow.state.tasks if (r := await self.task(uow, t))], None
