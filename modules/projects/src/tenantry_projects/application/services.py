"""Projects use cases: projects (create, read, rename, archive, list) and their tasks (create,
read, change, delete, list).

Every use case opens its unit of work from the factory the service was given, lets the
domain decide (domain/model.py), has the repository read and write inside that unit of work,
and records on it what happened: an audit record for every change (``uow.audit``) and
``TaskCompleted.v1`` when a task reaches done (``uow.publish``); the kernel writes both at
commit, in the same transaction. Results are rows (dicts of Python values); refusals are
``ProjectsError`` kinds. HTTP is the routes' business.

The project list reads through a ``ListCache`` when one is given (the platform cache, 600 s):
every change of a project (create, rename, archive, restore, and a new task, which raises its
task_count and updated_at) drops the tenant's cached pages after its commit, before the call
returns.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Generic
from uuid import UUID

from tenantry.kernel.db.ports import UnitsOfWork, W
from tenantry_projects.application.errors import DuplicateKey, ProjectNotFound, TaskNotFound
from tenantry_projects.application.ports import ListCache, Page, ProjectsRepository, Row
from tenantry_projects.contracts import TaskCompleted
from tenantry_projects.domain.model import (
    Priority,
    ProjectArchived,
    ProjectStatus,
    TaskChange,
    apply_change,
    became_done,
    check_active,
    check_key,
    task_ref,
)

#: The task fields an audit record keeps (the description may be long: only whether it changed).
_TASK_AUDITED = ("title", "status", "priority", "assignee_id", "due_on")


def _audited(values: Row) -> Row:
    return {k: values[k] for k in _TASK_AUDITED if k in values}


def task_view(row: Row) -> Row:
    """A task as the API shows it: its ``ref`` (``WEB-12``) added, internals left out."""
    out = {k: v for k, v in row.items() if k != "project_status"}
    out["ref"] = task_ref(row["project_key"], row["number"])
    return out


class ProjectsService(Generic[W]):
    def __init__(
        self,
        uow: UnitsOfWork[W],
        repository: ProjectsRepository[W],
        lists: ListCache | None = None,
    ) -> None:
        #: Opens a unit of work in the current tenant (kernel: ``Database.unit_of_work``).
        self.uow = uow
        self.repository = repository
        #: Cached pages of the project list (None: every list reads the store).
        self.lists = lists

    async def _lists_changed(self) -> None:
        if self.lists is not None:
            await self.lists.invalidate()

    # -- projects ---------------------------------------------------------------------------
    async def create_project(self, key: str, name: str, description: str) -> Row:
        values = {
            "id": uuid.uuid4(),
            "key": check_key(key),
            "name": name,
            "description": description,
        }
        async with self.uow() as uow:
            row = await self.repository.create_project(uow, values)
            if row is None:
                raise DuplicateKey(f"a project with key {key!r} already exists", field="key")
            uow.audit(
                "projects.project.create",
                f"project:{row['id']}",
                after={"key": row["key"], "name": row["name"]},
            )
        await self._lists_changed()
        return row

    async def project(self, project_id: UUID) -> Row:
        async with self.uow(readonly=True) as uow:
            row = await self.repository.project(uow, project_id)
        if row is None:
            raise ProjectNotFound(f"project {project_id} not found")
        return row

    async def update_project(
        self, project_id: UUID, name: str | None, description: str | None
    ) -> Row:
        async with self.uow() as uow:
            before = await self.repository.project(uow, project_id, lock=True)
            if before is None:
                raise ProjectNotFound(f"project {project_id} not found")
            check_active(before["key"], ProjectStatus(before["status"]))
            row = await self.repository.update_project(uow, project_id, name, description)
            assert row is not None  # locked above
            changed = [k for k in ("name", "description") if before[k] != row[k]]
            if changed:
                uow.audit(
                    "projects.project.update",
                    f"project:{project_id}",
                    before={k: before[k] for k in changed if k == "name"},
                    after={k: row[k] for k in changed if k == "name"},
                    details={"changed": changed},
                )
        if changed:
            await self._lists_changed()
        return row

    async def set_archived(self, project_id: UUID, archived: bool) -> Row:
        """Archive the project (its tasks become read-only) or bring it back; idempotent."""
        target = ProjectStatus.ARCHIVED if archived else ProjectStatus.ACTIVE
        async with self.uow() as uow:
            before = await self.repository.project(uow, project_id, lock=True)
            if before is None:
                raise ProjectNotFound(f"project {project_id} not found")
            if before["status"] == target:
                return before
            row = await self.repository.set_project_status(uow, project_id, target.value)
            assert row is not None  # locked above
            uow.audit(
                "projects.project.archive" if archived else "projects.project.restore",
                f"project:{project_id}",
                before={"status": before["status"]},
                after={"status": row["status"]},
            )
        await self._lists_changed()
        return row

    async def projects(self, query: Any) -> Page:
        if self.lists is not None:
            return await self.lists.page(query, lambda: self._projects(query))
        return await self._projects(query)

    async def _projects(self, query: Any) -> Page:
        async with self.uow(readonly=True) as uow:
            return await self.repository.list_projects(uow, query)

    # -- tasks ------------------------------------------------------------------------------
    async def create_task(
        self,
        project_id: UUID,
        title: str,
        description: str,
        priority: Priority,
        assignee_id: UUID | None,
        due_on: date | None,
    ) -> Row:
        task_id = uuid.uuid4()
        async with self.uow() as uow:
            numbered = await self.repository.next_task_number(uow, project_id)
            if numbered is None:
                project = await self.repository.project(uow, project_id)
                if project is None:
                    raise ProjectNotFound(f"project {project_id} not found")
                raise ProjectArchived(f"project {project['key']} is archived; no task can be added")
            number, key = numbered
            values: Row = {
                "id": task_id,
                "project_id": project_id,
                "number": number,
                "title": title,
                "description": description,
                "priority": priority.value,
                "assignee_id": assignee_id,
                "due_on": due_on,
            }
            row = {**await self.repository.create_task(uow, values), "project_key": key}
            uow.audit(
                "projects.task.create",
                f"task:{task_id}",
                after={"ref": task_ref(key, number), **_audited(row)},
            )
        await self._lists_changed()  # the project's task_count and updated_at moved
        return task_view(row)

    async def task(self, task_id: UUID) -> Row:
        async with self.uow(readonly=True) as uow:
            row = await self.repository.task(uow, task_id)
        if row is None:
            raise TaskNotFound(f"task {task_id} not found")
        return task_view(row)

    async def update_task(self, task_id: UUID, change: TaskChange) -> Row:
        async with self.uow() as uow:
            before = await self.repository.task(uow, task_id, lock=True)
            if before is None:
                raise TaskNotFound(f"task {task_id} not found")
            check_active(before["project_key"], ProjectStatus(before["project_status"]))
            after = apply_change(before, change)
            changed = {k: v for k, v in after.items() if before[k] != v}
            if changed:
                await self.repository.update_task(uow, task_id, {**before, **after})
                uow.audit(
                    "projects.task.update",
                    f"task:{task_id}",
                    before=_audited({k: before[k] for k in changed}),
                    after=_audited(changed),
                    details={"changed": sorted(changed)},
                )
            row = await self.repository.task(uow, task_id)
            assert row is not None  # locked above
            if became_done(before, row):
                uow.publish(
                    TaskCompleted(
                        task_id=task_id,
                        project_id=row["project_id"],
                        ref=task_ref(row["project_key"], row["number"]),
                        title=row["title"],
                        assignee_id=row["assignee_id"],
                    )
                )
        return task_view(row)

    async def delete_task(self, task_id: UUID) -> None:
        async with self.uow() as uow:
            before = await self.repository.task(uow, task_id, lock=True)
            if before is None:
                raise TaskNotFound(f"task {task_id} not found")
            check_active(before["project_key"], ProjectStatus(before["project_status"]))
            await self.repository.delete_task(uow, task_id)
            uow.audit(
                "projects.task.delete",
                f"task:{task_id}",
                before={
                    "ref": task_ref(before["project_key"], before["number"]),
                    **_audited(before),
                },
            )

    async def tasks(self, query: Any) -> Page:
        async with self.uow(readonly=True) as uow:
            rows, cursor = await self.repository.list_tasks(uow, query)
        return [task_view(r) for r in rows], cursor
