"""Every SQL text of ``src/`` goes through the tenant filter here first, not in production.

The texts: every module-level and class-level string constant of every ``tenantry`` module
that starts like a statement (SELECT, WITH, INSERT, UPDATE, DELETE, EXPLAIN; f-string
constants included, as evaluated at import), and every such string literal written inline in
a function. ``{name}`` slots of ``.format`` templates are filled (``FILL``; any other slot:
the shared schema). The ``.sql`` files of ``src/`` are all migrations: run on admin
connections, never through a unit of work, so not here. SQL assembled at run time (list
filters, export queries over a source) is covered by the tests of those paths, which run
with the filter on.

Each rewritten statement is then PREPAREd by PostgreSQL in a tenant's unit of work, so a
rewrite that sqlglot generates wrongly fails here too.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import asyncpg

import tenantry
from tenantry.kernel.db import tenant_filter
from tenantry.kernel.db.privileged import admin_connection, tenant_unit_of_work
from tenantry.kernel.db.rls import tenant_tables
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import SHARED_SCHEMA
from tests.architecture.contracts import module_packages
from tests.conftest import MakeTenant

SQL_START = re.compile(r"\s*(WITH|SELECT|INSERT|UPDATE|DELETE|EXPLAIN)\s")
SLOT = re.compile(r"\{\w+\}")
#: What the ``.format`` slots of list and schema templates are filled with.
FILL = {"where": "TRUE", "order_by": "1", "limit": "10"}


def fill(text: str) -> str:
    # "{schema}outbox" (kernel/messaging/outbox.insert_sql) holds the dot in the slot
    text = re.sub(r"\{schema\}(?=\w)", f'"{SHARED_SCHEMA}".', text)
    return SLOT.sub(lambda m: FILL.get(m.group()[1:-1], f'"{SHARED_SCHEMA}"'), text)


def _packages() -> list[tuple[str, Path]]:
    """The kernel's distribution and every module distribution installed beside it."""
    outside = sorted({p.split(".", 1)[0] for p in module_packages() if "." not in p})
    found = [("tenantry", Path(tenantry.__file__).parent)]
    for name in outside:
        found.append((name, Path(importlib.import_module(name).__file__ or "").parent))
    return found


def sql_texts() -> dict[str, str]:
    """Every SQL text of src/tenantry and of each module distribution -> where it is."""
    found: dict[str, str] = {}

    def keep(value: object, where: str) -> None:
        # a statement, not a fragment a builder joins ("WITH " + ctes in kernel/db/commit)
        if isinstance(value, str) and SQL_START.match(value) and len(value.split()) > 2:
            found.setdefault(value, where)

    for package, root in _packages():
        for info in pkgutil.walk_packages([str(root)], f"{package}."):
            mod = importlib.import_module(info.name)
            for name, value in vars(mod).items():
                keep(value, f"{info.name}.{name}")
                if isinstance(value, type) and value.__module__ == info.name:
                    for attr, v in vars(value).items():
                        keep(v, f"{info.name}.{name}.{attr}")
        for path in root.rglob("*.py"):
            if path.name in ("tenant_filter.py", "tenant_rewrite.py"):  # messages: "INSERT ..."
                continue
            tree = ast.parse(path.read_text())
            # the pieces of an f-string are not statements of their own
            pieces = {
                id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and id(node) not in pieces:
                    keep(node.value, f"{package}/{path.relative_to(root)}:{node.lineno}")
    # The commit's one statement (kernel/db/commit.combine): the outbox's and the audit's
    # parts as data-modifying CTEs, as the unit of work sends it when both have rows.
    from tenantry.capabilities.audit.log import sql as audit_sql
    from tenantry.capabilities.audit.sql import PENDING_PART
    from tenantry.kernel.db.commit import _combined, _joined
    from tenantry.kernel.messaging.outbox import insert_sql
    from tenantry_ledger.infrastructure import sql as ledger_sql

    outbox = (insert_sql(None), None, 7)
    audit = (audit_sql(PENDING_PART, SHARED_SCHEMA), None, 2)
    found.setdefault(_combined((outbox, audit)), "kernel/db/commit.combine(outbox, audit)")
    # A posting: the ledger's write carrying them (kernel/db/commit.join).
    found.setdefault(
        _joined(ledger_sql.WRITE, 21, (outbox, audit)), "kernel/db/commit.join(WRITE, ...)"
    )
    return found


def test_the_collector_finds_the_sql() -> None:
    texts = sql_texts()
    where = set(texts.values())
    assert len(texts) > 150
    assert "tenantry_ledger.infrastructure.sql.WRITE" in where
    assert "tenantry.kernel.messaging.sql.OUTBOX_ROWS_PART" in where
    assert "kernel/db/commit.join(WRITE, ...)" in where
    assert any(w.startswith("tenantry/capabilities/export/service.py:") for w in where)  # inline
    # a module of its own distribution
    assert "tenantry_projects.infrastructure.sql.NEXT_TASK_NUMBER" in where


async def test_every_sql_text_of_src_rewrites_and_prepares(
    platform: Platform, make_tenant: MakeTenant
) -> None:
    tf = await platform.db.load_tenant_filter()
    a = await make_tenant("shared")
    problems: list[str] = []
    rewritten = 0
    async with tenant_unit_of_work(platform.db, a.tenant) as uow:
        conn = uow._conn
        for text, where in sql_texts().items():
            sql = fill(text)
            try:
                done = tf.rewrite(sql)
            except tenant_filter.TenantFilterError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if not done.needs_tenant:
                continue
            rewritten += 1
            try:
                async with uow.savepoint():
                    await conn.prepare(done.sql)
            except asyncpg.PostgresError as exc:
                problems.append(f"{where}: PostgreSQL refuses the rewrite: {exc!r}\n  {done.sql}")
    assert not problems, "\n".join(problems)
    assert rewritten > 100


async def test_the_filter_knows_every_tenant_table_and_its_guard_holds(platform: Platform) -> None:
    """The set is the catalog's (RLS's definition), and every tenant_id is a NOT NULL uuid:
    the guard on a hand-written tenant_id (NULL for another tenant) relies on it."""
    tf = await platform.db.load_tenant_filter()
    async with admin_connection(platform.db, as_owner=False) as conn:
        tables = await tenant_tables(conn)
        columns = await conn.fetch(
            """
            SELECT n.nspname AS schema, c.relname AS table, a.attnotnull AS not_null,
                   format_type(a.atttypid, a.atttypmod) AS type
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE a.attname = 'tenant_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
              AND (n.nspname = 'tenantry' OR n.nspname LIKE 'tenant\\_%')
            """
        )
    assert {t.table for t in tables} == set(tf.tables)
    assert {"ledger_entries", "roles", "memberships", "outbox"} <= tf.tables
    bad = [f"{r['schema']}.{r['table']}: {r['type']}" for r in columns if r["type"] != "uuid"]
    bad += [f"{r['schema']}.{r['table']}: nullable" for r in columns if not r["not_null"]]
    assert not bad, bad
