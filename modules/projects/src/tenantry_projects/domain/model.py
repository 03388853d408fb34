"""Projects and tasks as rules, without I/O.

A project has a short upper-case ``key`` (``WEB``) unique in its tenant; its tasks are
numbered 1, 2, ... in the project (``WEB-12``). An archived project is read-only: no task is
added to it or changed in it. A task moves ``todo -> in_progress -> done`` and may go back
(``done -> todo`` reopens it); every other move is refused, as is a change to a task whose
project is archived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

KEY_RE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
MAX_NAME = 200
MAX_TITLE = 300
MAX_DESCRIPTION = 10_000


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class TaskStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


#: The moves a task's status may make (staying where it is is always allowed).
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.TODO: frozenset({TaskStatus.IN_PROGRESS, TaskStatus.DONE}),
    TaskStatus.IN_PROGRESS: frozenset({TaskStatus.TODO, TaskStatus.DONE}),
    TaskStatus.DONE: frozenset({TaskStatus.TODO}),
}


class ProjectsError(ValueError):
    """A projects rule was broken; the message is safe to show to the caller. ``kind`` names
    the rule (routes.py maps it to a problem type and status); ``field`` the input at fault."""

    kind = "invalid"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(ProjectsError):
    kind = "invalid-transition"


class ProjectArchived(ProjectsError):
    kind = "project-archived"


def check_key(key: str) -> str:
    if not KEY_RE.fullmatch(key):
        raise ProjectsError(
            "a project key is 2 to 10 upper-case letters or digits, starting with a letter",
            field="key",
        )
    return key


def check_transition(current: TaskStatus, target: TaskStatus) -> None:
    if target != current and target not in TRANSITIONS[current]:
        raise InvalidTransition(
            f"a task cannot move from {current.value} to {target.value}", field="status"
        )


def check_active(project_key: str, status: ProjectStatus) -> None:
    if status is ProjectStatus.ARCHIVED:
        raise ProjectArchived(f"project {project_key} is archived; its tasks are read-only")


@dataclass(frozen=True, slots=True)
class TaskChange:
    """What a PATCH of a task asks for: only the fields that were sent (``None`` inside
    ``values`` clears ``assignee_id`` or ``due_on``)."""

    values: dict[str, Any]

    @property
    def status(self) -> TaskStatus | None:
        value = self.values.get("status")
        return TaskStatus(value) if value is not None else None


def apply_change(task: dict[str, Any], change: TaskChange) -> dict[str, Any]:
    """The fields ``change`` sets, after checking its status move (``became_done`` tells
    whether the task became done: then it gets ``completed_at``; reopened, it loses it)."""
    current = TaskStatus(task["status"])
    target = change.status or current
    check_transition(current, target)
    after = dict(change.values)
    if "status" in after:
        after["status"] = target.value
    return after


def became_done(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return before["status"] != TaskStatus.DONE and after.get("status") == TaskStatus.DONE


def task_ref(project_key: str, number: int) -> str:
    return f"{project_key}-{number}"
