"""The projects module's startup object: wiring only (no I/O, no SQL).

``setup`` builds the application service on the kernel's unit-of-work factory, the SQL
repository and the project list's read path in the platform cache (``projects:list``,
600 s) and mounts the routes (``/api/v1/projects``). Audit records of every change and
``TaskCompleted.v1`` events are recorded on the change's unit of work and written by the
kernel at its commit.
"""

from __future__ import annotations

from typing import ClassVar

from tenantry.capabilities.cache import Cache
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.modules import Module
from tenantry.kernel.registrar import Registrar
from tenantry_projects.application.services import ProjectsService
from tenantry_projects.infrastructure.cache import CachedLists
from tenantry_projects.infrastructure.repository import SqlProjectsRepository
from tenantry_projects.routes import READ, WRITE, build_router


class ProjectsModule(Module):
    name: ClassVar[str] = "projects"
    depends_on: ClassVar[tuple[str, ...]] = ("cache",)
    migrations: ClassVar[str | None] = "tenantry_projects.migrations"
    permissions: ClassVar[dict[str, str]] = {
        READ: "read projects and tasks",
        WRITE: "create and change projects and tasks",
    }
    default_roles: ClassVar[dict[str, list[str]]] = {
        "project-member": [READ, WRITE],
        "project-viewer": [READ],
    }

    def setup(self, registrar: Registrar) -> None:
        cache = registrar.find(Cache)
        service: ProjectsService[UnitOfWork] = ProjectsService(
            registrar.db.unit_of_work,
            SqlProjectsRepository(),
            CachedLists(cache) if cache is not None else None,
        )
        registrar.include_router(build_router(service))


module = ProjectsModule()

__all__ = ["READ", "WRITE", "ProjectsModule", "module"]
