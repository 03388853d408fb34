"""What the projects use cases need: a unit of work (opened from the factory the service is
given) and a repository working inside it. Generic over the unit of work's type, so the
service runs on the kernel's ``UnitOfWork`` + ``SqlProjectsRepository`` and on in-memory
fakes alike."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar
from uuid import UUID

Row = dict[str, Any]
Page = tuple[list[Row], str | None]


class Work(Protocol):
    """What a service does with a unit of work itself: record events and audit records
    (written by the kernel at commit). Everything else goes through the repository."""

    def publish(self, event: Any) -> UUID: ...

    def audit(
        self,
        action: str,
        resource: str | None = None,
        *,
        before: Any = None,
        after: Any = None,
        outcome: str = "success",
        details: Any = None,
    ) -> None: ...


W_co = TypeVar("W_co", bound=Work, covariant=True)
W_contra = TypeVar("W_contra", bound=Work, contravariant=True)
W = TypeVar("W", bound=Work)


class UnitsOfWork(Protocol[W_co]):
    """Opens a unit of work in the current tenant: commits on exit, rolls back on an
    exception."""

    def __call__(self, *, readonly: bool = False) -> AbstractAsyncContextManager[W_co]: ...


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

    async def create_task(self, uow: W_contra, values: Row) -> None: ...

    async def task(self, uow: W_contra, task_id: UUID, *, lock: bool = False) -> Row | None: ...

    async def update_task(self, uow: W_contra, task_id: UUID, values: Row) -> None: ...

    async def delete_task(self, uow: W_contra, task_id: UUID) -> None: ...

    async def list_projects(self, uow: W_contra, query: Any) -> Page: ...

    async def list_tasks(self, uow: W_contra, query: Any) -> Page: ...
