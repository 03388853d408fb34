"""Projects' HTTP routes (``/api/v1/projects``): HTTP only. Each route parses its request,
calls one ``ProjectsService`` method and maps its result, or its domain error, to a response;
the status and problem type of every ``ProjectsError`` kind are decided here (``RULES``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tenantry.capabilities.pagination import ListQuery, list_query, search_query
from tenantry.kernel.errors import ProblemError
from tenantry.kernel.http.deps import require
from tenantry.kernel.http.openapi import NOT_BLANK, problems_extra
from tenantry.kernel.http.responses import JsonResponse
from tenantry.kernel.tenancy.context import Principal
from tenantry_projects.application.services import ProjectsService
from tenantry_projects.domain.model import (
    KEY_RE,
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_TITLE,
    Priority,
    ProjectsError,
    TaskChange,
    TaskStatus,
)
from tenantry_projects.infrastructure.lists import PROJECT_FIELDS, TASK_FIELDS

READ = "projects:read"
WRITE = "projects:write"

CanRead = Annotated[Principal, Depends(require(READ))]
CanWrite = Annotated[Principal, Depends(require(WRITE))]


class Strict(BaseModel):
    """Request bodies reject unknown fields: a body can never carry ``tenant_id``."""

    model_config = ConfigDict(extra="forbid")


def _no_default(schema: dict[str, Any]) -> None:
    """A PATCH field's default is never used (only the fields sent are applied): not shown."""
    schema.pop("default", None)


Title = Annotated[str, Field(min_length=1, max_length=MAX_TITLE, pattern=NOT_BLANK)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NOT_BLANK)]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION)]


class ProjectIn(Strict):
    key: str = Field(pattern=KEY_RE.pattern, description="2-10 upper-case letters or digits")
    name: Name
    description: Description = ""


class ProjectPatch(Strict):
    name: Name = Field(default="-", json_schema_extra=_no_default)
    description: Description = Field(default="", json_schema_extra=_no_default)


class TaskIn(Strict):
    title: Title
    description: Description = ""
    priority: Priority = Priority.NORMAL
    assignee_id: UUID | None = None
    due_on: date | None = None


class TaskPatch(Strict):
    """Only the fields sent change; ``null`` clears ``assignee_id`` or ``due_on``."""

    title: Title = Field(default="-", json_schema_extra=_no_default)
    description: Description = Field(default="", json_schema_extra=_no_default)
    status: TaskStatus = Field(default=TaskStatus.TODO, json_schema_extra=_no_default)
    priority: Priority = Field(default=Priority.NORMAL, json_schema_extra=_no_default)
    assignee_id: UUID | None = Field(default=None, json_schema_extra=_no_default)
    due_on: date | None = Field(default=None, json_schema_extra=_no_default)


# ProjectsError.kind -> (status, problem type slug, title): the edge's mapping of the
# module's domain errors (domain/model.py, application/errors.py).
RULES: dict[str, tuple[int, str, str]] = {
    "invalid": (422, "projects-invalid", "Invalid projects request"),
    "project-not-found": (404, "projects-project-not-found", "Project not found"),
    "task-not-found": (404, "projects-task-not-found", "Task not found"),
    "duplicate-key": (409, "projects-duplicate-key", "Project key already used"),
    "project-archived": (409, "projects-project-archived", "Project archived"),
    "invalid-transition": (409, "projects-invalid-transition", "Status change not allowed"),
}  # fmt: skip


class ProjectsProblem(ProblemError):
    def __init__(self, exc: ProjectsError) -> None:
        errors = [{"field": exc.field, "message": str(exc)}] if exc.field else None
        super().__init__(str(exc), errors=errors)
        self.status, self.type_slug, self.title = RULES[exc.kind]


@contextlib.contextmanager
def _problems() -> Iterator[None]:
    """Domain errors of the service call inside become problems."""
    try:
        yield
    except ProjectsError as exc:
        raise ProjectsProblem(exc) from None


def _page(page: tuple[list[dict[str, Any]], str | None]) -> JsonResponse:
    items, cursor = page
    return JsonResponse({"items": items, "next_cursor": cursor})


def build_router(service: ProjectsService[Any]) -> APIRouter:
    router = APIRouter(tags=["projects"])

    @router.post("/projects", status_code=201, openapi_extra=problems_extra(409))
    async def create_project(body: ProjectIn, _: CanWrite) -> JsonResponse:
        with _problems():
            row = await service.create_project(body.key, body.name, body.description)
        return JsonResponse(row, status_code=201)

    @router.get("/projects", summary="Projects: ?filter=&sort=&limit=&cursor= (key, name, ...)")
    async def list_projects(
        _: CanRead, q: Annotated[ListQuery, Depends(list_query(PROJECT_FIELDS))]
    ) -> JsonResponse:
        return _page(await service.projects(q))

    @router.post("/projects/search", summary="Projects, with the filter document in the body")
    async def search_projects(
        _: CanRead, q: Annotated[ListQuery, Depends(search_query(PROJECT_FIELDS))]
    ) -> JsonResponse:
        return _page(await service.projects(q))

    @router.get("/projects/{project_id}", openapi_extra=problems_extra(404))
    async def get_project(project_id: UUID, _: CanRead) -> JsonResponse:
        with _problems():
            return JsonResponse(await service.project(project_id))

    @router.patch("/projects/{project_id}", openapi_extra=problems_extra(404, 409))
    async def update_project(project_id: UUID, body: ProjectPatch, _: CanWrite) -> JsonResponse:
        """Rename the project or change its description (not while it is archived: 409)."""
        sent = body.model_fields_set
        with _problems():
            row = await service.update_project(
                project_id,
                body.name if "name" in sent else None,
                body.description if "description" in sent else None,
            )
        return JsonResponse(row)

    @router.post("/projects/{project_id}/archive", openapi_extra=problems_extra(404))
    async def archive_project(project_id: UUID, _: CanWrite) -> JsonResponse:
        """Archive the project: its tasks become read-only (idempotent)."""
        with _problems():
            return JsonResponse(await service.set_archived(project_id, True))

    @router.post("/projects/{project_id}/restore", openapi_extra=problems_extra(404))
    async def restore_project(project_id: UUID, _: CanWrite) -> JsonResponse:
        """Bring an archived project back (idempotent)."""
        with _problems():
            return JsonResponse(await service.set_archived(project_id, False))

    @router.post(
        "/projects/{project_id}/tasks", status_code=201, openapi_extra=problems_extra(404, 409)
    )
    async def create_task(project_id: UUID, body: TaskIn, _: CanWrite) -> JsonResponse:
        """Add a task to the project (numbered in it: ``ref`` is ``KEY-n``); 409 when the
        project is archived."""
        with _problems():
            row = await service.create_task(
                project_id, body.title, body.description, body.priority, body.assignee_id,
                body.due_on,
            )  # fmt: skip
        return JsonResponse(row, status_code=201)

    @router.get("/tasks", summary="Tasks: ?filter=&sort=&limit=&cursor= (project_id, status, ...)")
    async def list_tasks(
        _: CanRead, q: Annotated[ListQuery, Depends(list_query(TASK_FIELDS))]
    ) -> JsonResponse:
        return _page(await service.tasks(q))

    @router.post("/tasks/search", summary="Tasks, with the filter document in the body")
    async def search_tasks(
        _: CanRead, q: Annotated[ListQuery, Depends(search_query(TASK_FIELDS))]
    ) -> JsonResponse:
        return _page(await service.tasks(q))

    @router.get("/tasks/{task_id}", openapi_extra=problems_extra(404))
    async def get_task(task_id: UUID, _: CanRead) -> JsonResponse:
        with _problems():
            return JsonResponse(await service.task(task_id))

    @router.patch("/tasks/{task_id}", openapi_extra=problems_extra(404, 409))
    async def update_task(task_id: UUID, body: TaskPatch, _: CanWrite) -> JsonResponse:
        """Change the fields sent. Status moves: todo -> in_progress -> done, and back (done ->
        todo reopens); others are 409, as is any change in an archived project."""
        change = TaskChange({k: getattr(body, k) for k in body.model_fields_set})
        with _problems():
            return JsonResponse(await service.update_task(task_id, change))

    @router.delete("/tasks/{task_id}", status_code=204, openapi_extra=problems_extra(404, 409))
    async def delete_task(task_id: UUID, _: CanWrite) -> None:
        with _problems():
            await service.delete_task(task_id)

    return router
