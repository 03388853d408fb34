"""What other modules may import from projects: its events."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class TaskCompleted(BaseModel):
    """A task reached ``done`` (published in the change's transaction; a reopened task that
    is done again publishes it again)."""

    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "projects.TaskCompleted.v1"

    task_id: UUID
    project_id: UUID
    ref: str
    title: str
    assignee_id: UUID | None
