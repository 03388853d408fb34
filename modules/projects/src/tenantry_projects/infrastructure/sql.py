"""The projects module's SQL, as named constants. No statement names ``tenant_id``: the unit
of work's tenant filter adds ``tenant_id = <the unit's tenant>`` to each (and the column to
each INSERT), and RLS checks the same underneath."""

from __future__ import annotations

PROJECT_COLUMNS = (
    "p.id, p.key, p.name, p.description, p.status, p.task_count, p.created_at, p.updated_at"
)
TASK_COLUMNS = (
    "t.id, t.project_id, p.key AS project_key, t.number, t.title, t.description, t.status, "
    "t.priority, t.assignee_id, t.due_on, t.created_at, t.updated_at, t.completed_at"
)

INSERT_PROJECT = f"""
INSERT INTO projects AS p (id, key, name, description) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, key) DO NOTHING
RETURNING {PROJECT_COLUMNS}
"""

PROJECT = f"SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1"

PROJECT_FOR_UPDATE = f"SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1 FOR UPDATE"

UPDATE_PROJECT = f"""
UPDATE projects AS p
SET name = coalesce($2, p.name), description = coalesce($3, p.description), updated_at = now()
WHERE p.id = $1
RETURNING {PROJECT_COLUMNS}
"""

SET_PROJECT_STATUS = f"""
UPDATE projects AS p SET status = $2, updated_at = now() WHERE p.id = $1
RETURNING {PROJECT_COLUMNS}
"""

# The task's number: the project's counter, raised in the same statement that checks the
# project is active (the row lock orders concurrent creations; numbers never repeat).
NEXT_TASK_NUMBER = """
UPDATE projects AS p SET task_count = p.task_count + 1, updated_at = now()
WHERE p.id = $1 AND p.status = 'active'
RETURNING p.task_count, p.key
"""

INSERT_TASK = """
INSERT INTO project_tasks AS t
    (id, project_id, number, title, description, priority, assignee_id, due_on)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING t.id, t.project_id, t.number, t.title, t.description, t.status, t.priority,
          t.assignee_id, t.due_on, t.created_at, t.updated_at, t.completed_at
"""

TASK = f"""
SELECT {TASK_COLUMNS}, p.status AS project_status
FROM project_tasks t JOIN projects p ON p.id = t.project_id
WHERE t.id = $1
"""

# Locks the task and its project's row in share mode: archiving waits for the change.
TASK_FOR_UPDATE = f"""
SELECT {TASK_COLUMNS}, p.status AS project_status
FROM project_tasks t JOIN projects p ON p.id = t.project_id
WHERE t.id = $1
FOR UPDATE OF t FOR SHARE OF p
"""

UPDATE_TASK = """
UPDATE project_tasks AS t
SET title = $2, description = $3, status = $4, priority = $5, assignee_id = $6, due_on = $7,
    completed_at = CASE WHEN $4 = 'done' THEN coalesce(t.completed_at, now()) END,
    updated_at = now()
WHERE t.id = $1
"""

DELETE_TASK = "DELETE FROM project_tasks AS t WHERE t.id = $1"

LIST_PROJECTS = f"SELECT {PROJECT_COLUMNS} FROM projects p"

LIST_TASKS = f"SELECT {TASK_COLUMNS} FROM project_tasks t JOIN projects p ON p.id = t.project_id"
