"""What the projects use cases need: a unit of work (opened from the factory the service is
given) and a repository working inside it. Generic over the unit of work's type, so the
service runs on the kernel's ``UnitOfWork`` + ``SqlProjectsRepository`` and on in-memory
fakes alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from uuid import UUID

from tenantry.kernel.db.ports import W_contra

Row = dict[str, Any]
Page = tuple[list[Row], str | None]


class ProjectsRepository(Protocol[W_contra]):
    """Projects and tasks inside the caller's unit of work (never opens, commits, publishes
    or audits)."""

    async def create_project(self, uow: W_contra, values: Row) -> Row | None:
        """The new project, or None when its key is taken."""
        ...

    async def project(
        self, uow: W_contra, project_id: UUID, *, lock: bool = False
    ) -> Row | None: ...

    async def update_project(
        self, uow: W_contra, project_id: UUID, name: str | None, description: str | None
    ) -> Row | None: ...

    async def set_project_status(
        self, uow: W_contra, project_id: UUID, status: str
    ) -> Row | None: ...

    async def next_task_number(self, uow: W_contra, project_id: UUID) -> tuple[int, str] | None:
        """Raise the project's task counter: (number, project key), or None when the
        project is missing or archived."""
        ...

    async def create_task(self, uow: W_contra, values: Row) -> Row:
        """The new task's row (without its project's columns)."""
        ...

    async def task(self, uow: W_contra, task_id: UUID, *, lock: bool = False) -> Row | None: ...

    async def update_task(self, uow: W_contra, task_id: UUID, values: Row) -> None: ...

    async def delete_task(self, uow: W_contra, task_id: UUID) -> None: ...

    async def list_projects(self, uow: W_contra, query: Any) -> Page: ...

    async def list_tasks(self, uow: W_contra, query: Any) -> Page: ...


class ListCache(Protocol):
    """Pages of the project list kept in the platform cache (infrastructure/cache.py), per
    tenant; ``invalidate`` after a change's commit drops them in every process."""

    async def page(self, query: Any, load: Callable[[], Awaitable[Page]]) -> Page: ...

    async def invalidate(self) -> None: ...
