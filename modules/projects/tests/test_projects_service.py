"""ProjectsService on in-memory fakes (no PostgreSQL): the use cases' rules, audit records
and events, and that a refusal leaves nothing behind."""

from __future__ import annotations

import uuid

import pytest

from projects_fakes import FakeProjectsRepository, FakeUnitOfWork, FakeUnits
from tenantry_projects.application.errors import DuplicateKey, ProjectNotFound, TaskNotFound
from tenantry_projects.application.services import ProjectsService
from tenantry_projects.contracts import TaskCompleted
from tenantry_projects.domain.model import (
    InvalidTransition,
    Priority,
    ProjectArchived,
    ProjectsError,
    TaskChange,
)


@pytest.fixture
def units() -> FakeUnits:
    return FakeUnits()


@pytest.fixture
def service(units: FakeUnits) -> ProjectsService[FakeUnitOfWork]:
    return ProjectsService(units, FakeProjectsRepository())


async def test_create_number_complete_and_reopen(
    service: ProjectsService[FakeUnitOfWork], units: FakeUnits
) -> None:
    project = await service.create_project("WEB", "Website", "")
    one = await service.create_task(project["id"], "One", "", Priority.HIGH, None, None)
    two = await service.create_task(project["id"], "Two", "", Priority.LOW, None, None)
    assert (one["ref"], two["ref"]) == ("WEB-1", "WEB-2")
    done = await service.update_task(one["id"], TaskChange({"status": "done"}))
    assert done["status"] == "done"
    assert done["completed_at"] is not None
    again = await service.update_task(one["id"], TaskChange({"status": "done"}))  # no change
    assert again["completed_at"] == done["completed_at"]
    reopened = await service.update_task(one["id"], TaskChange({"status": "todo"}))
    assert reopened["completed_at"] is None
    assert [type(e) for e in units.events] == [TaskCompleted]
    assert units.events[0].ref == "WEB-1"
    assert [a["action"] for a in units.audits] == [
        "projects.project.create",
        "projects.task.create",
        "projects.task.create",
        "projects.task.update",
        "projects.task.update",
    ]


async def test_refusals_leave_nothing(
    service: ProjectsService[FakeUnitOfWork], units: FakeUnits
) -> None:
    project = await service.create_project("WEB", "Website", "")
    with pytest.raises(DuplicateKey):
        await service.create_project("WEB", "Again", "")
    with pytest.raises(ProjectsError) as bad_key:
        await service.create_project("web", "x", "")
    assert bad_key.value.field == "key"
    task = await service.create_task(project["id"], "One", "", Priority.NORMAL, None, None)
    await service.update_task(task["id"], TaskChange({"status": "done"}))
    with pytest.raises(InvalidTransition):
        await service.update_task(task["id"], TaskChange({"status": "in_progress"}))
    await service.set_archived(project["id"], True)
    with pytest.raises(ProjectArchived):
        await service.create_task(project["id"], "Two", "", Priority.NORMAL, None, None)
    with pytest.raises(ProjectArchived):
        await service.delete_task(task["id"])
    with pytest.raises(ProjectNotFound):
        await service.create_task(uuid.uuid4(), "x", "", Priority.NORMAL, None, None)
    with pytest.raises(TaskNotFound):
        await service.task(uuid.uuid4())
    assert units.state.projects[project["id"]]["task_count"] == 1
    assert len(units.events) == 1  # the one completion
    assert units.rollbacks == 5  # the bad key is refused before any unit of work opens
