"""The tenant filter's rewrite rules (kernel/db/tenant_filter), on SQL text alone."""

from __future__ import annotations

import pytest
import sqlglot

from tenantry.kernel.db.tenant_filter import TenantFilter, TenantFilterError

TABLES = {"accounts", "entries", "roles", "memberships", "outbox", "outbox_dead"}
P = "CAST($2 AS UUID)"


def rw(sql: str) -> str:
    done = TenantFilter(TABLES).rewrite(sql)
    assert done.needs_tenant
    return done.sql


def same(a: str, b: str) -> None:
    """Equal as PostgreSQL statements (normalized through sqlglot)."""
    assert sqlglot.parse_one(a, read="postgres") == sqlglot.parse_one(b, read="postgres"), a


def test_statement_without_tenant_table_is_returned_as_it_is() -> None:
    f = TenantFilter(TABLES)
    for sql in (
        "SELECT now()",
        "select  1 -- roles\n",
        "SELECT * FROM tenantry.tenants WHERE slug = $1",
        "SHOW transaction_isolation",
        "SELECT pg_notify($1, $2)",
    ):
        done = f.rewrite(sql)
        assert not done.needs_tenant
        assert done.sql is sql


def test_select_where_gets_the_condition_with_a_new_parameter() -> None:
    same(
        rw("SELECT id FROM accounts WHERE id = $1 OR code = $1"),
        f"SELECT id FROM accounts WHERE (id = $1 OR code = $1) AND accounts.tenant_id = {P}",
    )
    same(
        rw("SELECT a.id FROM accounts a"),
        "SELECT a.id FROM accounts AS a WHERE a.tenant_id = CAST($1 AS UUID)",
    )


def test_placeholders_without_spaces_and_inside_strings() -> None:
    # sqlglot alone reads "$1,$2" as a dollar-quoted string; '$9' is a string, not a parameter
    out = rw("SELECT f($1,$2), '$9' FROM roles")
    same(out, "SELECT f($1, $2), '$9' FROM roles WHERE roles.tenant_id = CAST($3 AS UUID)")


def test_left_join_inner_side_in_on_inner_join_in_where() -> None:
    same(
        rw(
            "SELECT a.id, e.amount FROM accounts a LEFT JOIN entries e ON e.account_id = a.id"
            " JOIN roles r ON r.name = a.code WHERE a.id = $1"
        ),
        "SELECT a.id, e.amount FROM accounts AS a"
        f" LEFT JOIN entries AS e ON (e.account_id = a.id) AND e.tenant_id = {P}"
        " JOIN roles AS r ON r.name = a.code"
        f" WHERE (a.id = $1) AND a.tenant_id = {P} AND r.tenant_id = {P}",
    )


def test_subqueries_ctes_and_lateral() -> None:
    same(
        rw(
            "WITH x AS (SELECT id FROM accounts WHERE code = $1)"
            " SELECT (SELECT count(*) FROM entries e WHERE e.account_id = x.id) FROM x"
            " WHERE EXISTS (SELECT 1 FROM roles)"
        ),
        f"WITH x AS (SELECT id FROM accounts WHERE (code = $1) AND accounts.tenant_id = {P})"
        " SELECT (SELECT COUNT(*) FROM entries AS e"
        f" WHERE (e.account_id = x.id) AND e.tenant_id = {P}) FROM x"
        f" WHERE EXISTS(SELECT 1 FROM roles WHERE roles.tenant_id = {P})",
    )


def test_update_from_and_delete_using() -> None:
    same(
        rw("UPDATE accounts a SET code = v.c FROM entries v WHERE a.id = v.id AND a.id = $1"),
        "UPDATE accounts AS a SET code = v.c FROM entries AS v"
        f" WHERE (a.id = v.id AND a.id = $1) AND a.tenant_id = {P} AND v.tenant_id = {P}",
    )
    same(
        rw("DELETE FROM accounts USING entries e WHERE e.account_id = accounts.id AND e.id = $1"),
        "DELETE FROM accounts USING entries AS e WHERE (e.account_id = accounts.id AND e.id = $1)"
        f" AND accounts.tenant_id = {P} AND e.tenant_id = {P}",
    )


def test_insert_gets_the_tenant_column() -> None:
    same(
        rw("INSERT INTO roles (name, actions) VALUES ($1, $2), ($1, '{}') RETURNING name"),
        "INSERT INTO roles (name, actions, tenant_id) VALUES"
        " ($1, $2, CAST($3 AS UUID)), ($1, '{}', CAST($3 AS UUID)) RETURNING name",
    )


def test_insert_select_is_filtered_and_gets_the_column_in_every_branch() -> None:
    same(
        rw(
            "INSERT INTO outbox_dead (message_id) SELECT message_id FROM outbox WHERE id = $1"
            " UNION ALL SELECT $2"
        ),
        "INSERT INTO outbox_dead (message_id, tenant_id)"
        " SELECT message_id, CAST($3 AS UUID) FROM outbox"
        " WHERE (id = $1) AND outbox.tenant_id = CAST($3 AS UUID)"
        " UNION ALL SELECT $2, CAST($3 AS UUID)",
    )


def test_on_conflict_do_update_touches_only_the_tenants_row() -> None:
    same(
        rw(
            "INSERT INTO roles (name, actions) VALUES ($1, $2) ON CONFLICT (tenant_id, name)"
            " DO UPDATE SET actions = EXCLUDED.actions WHERE roles.actions <> EXCLUDED.actions"
        ),
        "INSERT INTO roles (name, actions, tenant_id) VALUES ($1, $2, CAST($3 AS UUID))"
        " ON CONFLICT (tenant_id, name) DO UPDATE SET actions = EXCLUDED.actions"
        " WHERE (roles.actions <> EXCLUDED.actions) AND roles.tenant_id = CAST($3 AS UUID)",
    )
    # DO NOTHING has no WHERE to add: the conflicting row is not touched
    same(
        rw("INSERT INTO roles (name) VALUES ($1) ON CONFLICT DO NOTHING"),
        "INSERT INTO roles (name, tenant_id) VALUES ($1, CAST($2 AS UUID)) ON CONFLICT DO NOTHING",
    )


def test_a_written_tenant_id_must_be_the_current_tenant() -> None:
    guard = f"CASE WHEN $1 = {P} THEN {P} END"
    same(
        rw("INSERT INTO roles (tenant_id, name) VALUES ($1, 'x')"),
        f"INSERT INTO roles (tenant_id, name) VALUES ({guard}, 'x')",
    )
    same(
        rw("UPDATE roles SET tenant_id = $1"),
        f"UPDATE roles SET tenant_id = {guard} WHERE roles.tenant_id = {P}",
    )
    same(
        rw(
            "WITH gone AS (DELETE FROM outbox WHERE id = $1 RETURNING *)"
            " INSERT INTO outbox_dead (tenant_id, message_id)"
            " SELECT tenant_id, message_id FROM gone"
        ),
        f"WITH gone AS (DELETE FROM outbox WHERE (id = $1) AND outbox.tenant_id = {P}"
        " RETURNING *) INSERT INTO outbox_dead (tenant_id, message_id)"
        f" SELECT CASE WHEN tenant_id = {P} THEN {P} END, message_id FROM gone",
    )


def test_schema_qualified_and_quoted_references() -> None:
    same(
        rw('SELECT 1 FROM "tenant_x".roles, tenantry.memberships m WHERE m.user_id = $1'),
        'SELECT 1 FROM "tenant_x".roles, tenantry.memberships AS m WHERE (m.user_id = $1)'
        f' AND "tenant_x".roles.tenant_id = {P} AND m.tenant_id = {P}',
    )


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT * FROM tenantry.tenants t RIGHT JOIN roles r ON r.name = t.slug", "RIGHT JOIN"),
        ("SELECT * FROM roles a FULL JOIN roles b ON a.name = b.name", "FULL JOIN"),
        ("SELECT * FROM tenantry.tenants t LEFT JOIN roles USING (name)", "USING"),
        ("INSERT INTO roles SELECT * FROM roles", "without a column list"),
        ("INSERT INTO roles DEFAULT VALUES", "without a column list"),
        ("INSERT INTO roles (name) DEFAULT VALUES", "without VALUES or SELECT"),
        ("TRUNCATE roles", "cannot read names a tenant table"),
        ("MERGE INTO roles r USING x ON r.a = x.a WHEN MATCHED THEN DELETE", "cannot read"),
        ("WITH roles AS (SELECT 1) SELECT * FROM roles", "CTE is named like"),
        ("SELECT 1 FROM roles; SELECT 2", "several statements"),
        ("COPY roles TO STDOUT", "cannot read names a tenant table"),
        ("LOCK TABLE roles IN SHARE MODE", "cannot read names a tenant table"),
        ("SELECT FROM WHERE roles ((", "cannot parse"),
    ],
)
def test_what_it_cannot_rewrite_fails_loudly_naming_the_statement(sql: str, reason: str) -> None:
    with pytest.raises(TenantFilterError, match=reason) as err:
        TenantFilter(TABLES).rewrite(sql)
    assert " ".join(sql.split())[:40] in str(err.value)


def test_explain_rewrites_the_statement_explained() -> None:
    same(
        rw("EXPLAIN (ANALYZE, BUFFERS) SELECT 1 FROM roles WHERE name = $1").split(" ", 3)[-1],
        "SELECT 1 FROM roles WHERE (name = $1) AND roles.tenant_id = CAST($2 AS UUID)",
    )
    assert rw("explain SELECT 1 FROM roles").startswith("explain SELECT 1 FROM roles WHERE")


def test_table_shorthand_and_locking_clauses() -> None:
    same(rw("TABLE roles"), "SELECT * FROM roles WHERE roles.tenant_id = CAST($1 AS UUID)")
    same(
        rw("SELECT 1 FROM roles WHERE name = $1 FOR UPDATE OF roles SKIP LOCKED"),
        f"SELECT 1 FROM roles WHERE (name = $1) AND roles.tenant_id = {P}"
        " FOR UPDATE OF roles SKIP LOCKED",
    )


def test_rewritten_once_per_text() -> None:
    f = TenantFilter(TABLES)
    first = f.rewrite("SELECT 1 FROM roles")
    assert f.rewrite("SELECT 1 FROM roles") is first
