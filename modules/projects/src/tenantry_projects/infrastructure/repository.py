"""Projects and tasks on PostgreSQL, inside the caller's unit of work."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from tenantry.capabilities.pagination import ListQuery
from tenantry.kernel.db.uow import UnitOfWork
from tenantry_projects.application.ports import Page, Row
from tenantry_projects.infrastructure import sql


def _row(record: Any) -> Row:
    """A record as a dict of plain values (asyncpg's UUID subclass becomes ``uuid.UUID``)."""
    return {k: UUID(int=v.int) if isinstance(v, UUID) else v for k, v in record.items()}


class SqlProjectsRepository:
    async def create_project(self, uow: UnitOfWork, values: Row) -> Row | None:
        row = await uow.fetchrow(
            sql.INSERT_PROJECT, values["id"], values["key"], values["name"], values["description"]
        )
        return _row(row) if row else None

    async def project(self, uow: UnitOfWork, project_id: UUID, *, lock: bool = False) -> Row | None:
        row = await uow.fetchrow(sql.PROJECT_FOR_UPDATE if lock else sql.PROJECT, project_id)
        return _row(row) if row else None

    async def update_project(
        self, uow: UnitOfWork, project_id: UUID, name: str | None, description: str | None
    ) -> Row | None:
        row = await uow.fetchrow(sql.UPDATE_PROJECT, project_id, name, description)
        return _row(row) if row else None

    async def set_project_status(
        self, uow: UnitOfWork, project_id: UUID, status: str
    ) -> Row | None:
        row = await uow.fetchrow(sql.SET_PROJECT_STATUS, project_id, status)
        return _row(row) if row else None

    async def next_task_number(self, uow: UnitOfWork, project_id: UUID) -> tuple[int, str] | None:
        row = await uow.fetchrow(sql.NEXT_TASK_NUMBER, project_id)
        return (int(row["task_count"]), str(row["key"])) if row else None

    async def create_task(self, uow: UnitOfWork, values: Row) -> Row:
        row = await uow.fetchrow(
            sql.INSERT_TASK,
            values["id"],
            values["project_id"],
            values["number"],
            values["title"],
            values["description"],
            values["priority"],
            values["assignee_id"],
            values["due_on"],
        )
        assert row is not None  # INSERT ... RETURNING
        return _row(row)

    async def task(self, uow: UnitOfWork, task_id: UUID, *, lock: bool = False) -> Row | None:
        row = await uow.fetchrow(sql.TASK_FOR_UPDATE if lock else sql.TASK, task_id)
        return _row(row) if row else None

    async def update_task(self, uow: UnitOfWork, task_id: UUID, values: Row) -> None:
        await uow.execute(
            sql.UPDATE_TASK,
            task_id,
            values["title"],
            values["description"],
            values["status"],
            values["priority"],
            values["assignee_id"],
            values["due_on"],
        )

    async def delete_task(self, uow: UnitOfWork, task_id: UUID) -> None:
        await uow.execute(sql.DELETE_TASK, task_id)

    async def list_projects(self, uow: UnitOfWork, query: ListQuery) -> Page:
        text, args = query.render(sql.LIST_PROJECTS)
        rows = await uow.fetch(text, *args)
        return [_row(r) for r in rows[: query.limit]], query.next_cursor(rows)

    async def list_tasks(self, uow: UnitOfWork, query: ListQuery) -> Page:
        text, args = query.render(sql.LIST_TASKS)
        rows = await uow.fetch(text, *args)
        return [_row(r) for r in rows[: query.limit]], query.next_cursor(rows)
