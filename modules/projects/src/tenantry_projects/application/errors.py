"""The projects module's refusals as domain errors (``ProjectsError`` kinds), with no HTTP in
them: routes.py maps each kind to its problem type and status."""

from __future__ import annotations

from tenantry_projects.domain.model import ProjectsError


class ProjectNotFound(ProjectsError):
    kind = "project-not-found"


class TaskNotFound(ProjectsError):
    kind = "task-not-found"


class DuplicateKey(ProjectsError):
    kind = "duplicate-key"
