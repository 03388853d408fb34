"""The filterable, sortable fields of the project and task lists (the shared filter engine
and keyset pagination do the rest). Each sortable field has an index that leads with
``tenant_id`` and ends with the id (migrations/tenant/0001_projects.sql)."""

from __future__ import annotations

from tenantry.capabilities.filtering import FieldSet, fields

PROJECT_FIELDS = FieldSet(
    "projects.projects",
    id=fields.uuid("id", "p.id"),
    fields=[
        fields.text("key", "p.key"),
        fields.text("name", "p.name", sortable=True),
        fields.enum("status", "p.status", ["active", "archived"]),
        fields.datetime("created_at", "p.created_at", sortable=True),
    ],
    default_sort="created_at",
)

TASK_FIELDS = FieldSet(
    "projects.tasks",
    id=fields.uuid("id", "t.id"),
    fields=[
        fields.uuid("project_id", "t.project_id"),
        fields.integer("number", "t.number"),
        fields.text("title", "t.title"),
        fields.enum("status", "t.status", ["todo", "in_progress", "done"]),
        fields.enum("priority", "t.priority", ["low", "normal", "high", "urgent"]),
        fields.uuid("assignee_id", "t.assignee_id", nullable=True),
        fields.date("due_on", "t.due_on", nullable=True, sortable=True),
        fields.datetime("created_at", "t.created_at", sortable=True),
    ],
    default_sort="created_at",
)
