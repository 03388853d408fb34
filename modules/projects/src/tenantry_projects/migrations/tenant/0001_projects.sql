-- Projects and their tasks. RLS is added by the migration runner; every key leads with
-- tenant_id and the foreign key carries it (RI checks bypass RLS).

CREATE TABLE projects (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    key         text NOT NULL CHECK (key ~ '^[A-Z][A-Z0-9]{1,9}$'),
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    task_count  integer NOT NULL DEFAULT 0,   -- the number of the project's last task
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key)
);
-- keyset orders of the list (sortable fields end with the id)
CREATE INDEX projects_created ON projects (tenant_id, created_at, id);
CREATE INDEX projects_name ON projects (tenant_id, name, id);

CREATE TABLE project_tasks (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    project_id   uuid NOT NULL,
    number       integer NOT NULL,
    title        text NOT NULL,
    description  text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done')),
    priority     text NOT NULL DEFAULT 'normal'
                 CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    assignee_id  uuid,
    due_on       date,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, project_id, number),
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id)
);
CREATE INDEX project_tasks_created ON project_tasks (tenant_id, created_at, id);
CREATE INDEX project_tasks_due ON project_tasks (tenant_id, due_on, id);
CREATE INDEX project_tasks_assignee ON project_tasks (tenant_id, assignee_id, id);
CREATE INDEX project_tasks_project_created ON project_tasks (tenant_id, project_id, created_at, id);
