"""Every state change is audited: one test per change (a real request through the in-process
client, or the ``tenantry`` command), which then finds the record with its actor, action,
target and values; and a meta test: every mutating route of the app (POST/PUT/PATCH/DELETE in
``/openapi.json``) is audited, proven by a test here (``@audits``) or named in
``AUDITED_ELSEWHERE``, or listed, with the reason, in ``NOT_AUDITED``. A new route that is in
none of them fails ``test_every_mutating_route_is_audited_or_allowlisted``. The command line
has its counterpart: every ``tenantry`` command is proven audited here (``@audits("tenantry
keys rotate")``) or listed in ``CLI_NOT_AUDITED`` with the reason (reads included: a command
cannot be told a read from its signature), so a new command fails
``test_every_cli_command_is_audited_or_allowlisted`` until it is one or the other.

Where the records go (kernel/tenancy/audit): a tenant's own changes in its log; an operator's
change to one tenant (plan override, flag target, lifecycle, a dead letter of its store) in
that tenant's log; an operator's platform-wide change (flag rules, error triage, a key
rotation, a cache sweep) in the operator tenant's log. That each is one transaction with its
change is tests/integration/test_audit_atomic.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
import typer

from tenantry import cli as tenantry_cli
from tenantry.capabilities.audit.log import AuditLog
from tenantry.capabilities.cache.cache import Cache
from tenantry.kernel.config import Settings
from tenantry.kernel.http.app import create_app
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import Tenant
from tests.capabilities.test_authz_platform_actions import client_token, operator_tenant
from tests.cli import cli
from tests.conftest import PASSWORD, RUN, MakeTenant, TenantFixture
from tests.integration.test_audit_atomic import dead_letter

F = TypeVar("F", bound=Callable[..., Any])
MUTATING = ("POST", "PUT", "PATCH", "DELETE")


def audits(*routes: str) -> Callable[[F], F]:
    """Mark a test as the proof that ``routes`` ("METHOD /path" as in the OpenAPI document)
    are audited (the meta test reads the marks)."""

    def mark(fn: F) -> F:
        fn.__audits__ = routes  # type: ignore[attr-defined]
        return fn

    return mark


PROJECTS_TESTS = "modules/projects/tests/test_projects_api.py"

#: Audited, and proven by tests elsewhere.
AUDITED_ELSEWHERE: dict[str, str] = {
    "POST /api/v1/ledger/accounts": "tests/ledger/test_audited.py",
    "POST /api/v1/ledger/accounts/{account_id}/close": "tests/ledger/test_audited.py",
    "POST /api/v1/ledger/transactions": "tests/ledger/test_audited.py",
    "POST /api/v1/ledger/transactions/{transaction_id}/reverse": "tests/ledger/test_audited.py",
    # the same service call as POST /transactions (LedgerService.post_many), one record each
    "POST /api/v1/ledger/transactions/batch": "tests/ledger/test_audited.py",
    "POST /api/v1/notifications/webhooks": "tests/messaging/test_notifications.py",
    "POST /api/v1/projects/projects": PROJECTS_TESTS,
    "PATCH /api/v1/projects/projects/{project_id}": PROJECTS_TESTS,
    "POST /api/v1/projects/projects/{project_id}/archive": PROJECTS_TESTS,
    "POST /api/v1/projects/projects/{project_id}/restore": PROJECTS_TESTS,
    "POST /api/v1/projects/projects/{project_id}/tasks": PROJECTS_TESTS,
    "PATCH /api/v1/projects/tasks/{task_id}": PROJECTS_TESTS,
    "DELETE /api/v1/projects/tasks/{task_id}": PROJECTS_TESTS,
}

#: Mutating methods that change no state worth a record, or not audited yet: each says why.
NOT_AUDITED: dict[str, str] = {
    # credentials: issuing a token changes nothing (a refused login is the identity module's)
    "POST /api/v1/identity/token": "token issuance",
    # reads with the filter document in the body
    "POST /api/v1/audit/events/search": "a read",
    "POST /api/v1/identity/users/search": "a read",
    "POST /api/v1/ledger/accounts/search": "a read",
    "POST /api/v1/ledger/transactions/search": "a read",
    "POST /api/v1/projects/projects/search": "a read",
    "POST /api/v1/projects/tasks/search": "a read",
    # explains a decision; the decision itself is recorded (authz.decision), nothing changes
    "POST /api/v1/authz/check": "a read",
}


#: Commands of ``tenantry`` that are not audited, each with why (``@audits("tenantry ...")``
#: marks the tests of those that are).
CLI_NOT_AUDITED: dict[str, str] = {
    # reads
    "tenantry tenants list": "a read",
    "tenantry modules": "a read",
    "tenantry config check": "a read",
    "tenantry config reference": "a read",
    "tenantry cache stats": "a read",
    "tenantry errors list": "a read",
    "tenantry errors show": "a read",
    "tenantry exports list": "a read",
    "tenantry exports show": "a read",
    "tenantry flags list": "a read",
    "tenantry messages dead list": "a read",
    "tenantry sagas list": "a read",
    "tenantry sagas show": "a read",
    "tenantry slo report": "a read",
    # chains pending records before verifying: the log's own upkeep, no change it records
    "tenantry audit verify": "a read",
    # the platform's own setup and upkeep, not an operator's change to its data
    "tenantry migrate": "schema migrations (recorded in the migrations table) and the first key",
    "tenantry audit partitions": "DDL: the audit log's own future partitions",
    "tenantry db stop": "stops the local embedded PostgreSQL; no platform state",
    "tenantry slo export": "writes files from the config; no platform state",
    "tenantry cache warm": "fills cache entries from the stores (what any read does); no change",
    # run the platform: every change they serve is audited where it is made
    "tenantry serve": "runs the server",
    "tenantry worker": "runs the relay and the consumers",
    "tenantry jobs worker": "runs the job worker",
    "tenantry demo": "runs a local demo; its tenants are onboarded (audited tenant.created)",
}


async def records(platform: Platform, tenant: Tenant, action: str) -> list[dict[str, Any]]:
    """The tenant's records of ``action``, newest first (pending ones chained first)."""
    return await platform.use(AuditLog).events(tenant, before_seq=None, limit=100, action=action)


async def me(client: httpx.AsyncClient, auth: dict[str, str]) -> tuple[str, str]:
    r = await client.get("/api/v1/identity/me", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()["subject"], r.json()["kind"]


def by(record: dict[str, Any], actor: tuple[str, str] | None) -> None:
    """The record names ``actor`` (subject, kind), or no actor (the command line)."""
    if actor is None:
        assert (record["actor"], record["actor_kind"]) == (None, None), record
    else:
        assert (record["actor"], record["actor_kind"]) == actor, record


class Operator:
    def __init__(self, tenant: Tenant, auth: dict[str, str], actor: tuple[str, str]) -> None:
        self.tenant = tenant
        self.auth = auth
        self.actor = actor


@pytest.fixture(scope="module")
async def operator(platform: Platform, client: httpx.AsyncClient) -> Operator:
    tenant = await operator_tenant(platform)
    auth = await client_token(platform, client, tenant, ["admin"])
    return Operator(tenant, auth, await me(client, auth))


# -- tenant lifecycle ---------------------------------------------------------------------------
@audits("POST /api/v1/platform/tenants")
async def test_tenant_creation_is_audited_in_the_new_tenant(
    platform: Platform, client: httpx.AsyncClient, operator: Operator
) -> None:
    slug = f"aud{RUN}-new"
    body = {"slug": slug, "name": "Audited Co", "plan": "free", "admin_email": f"a@{slug}.test"}
    r = await client.post("/api/v1/platform/tenants", json=body, headers=operator.auth)
    assert r.status_code == 201, r.text
    tenant = await platform.catalog.by_slug(slug)
    assert tenant is not None
    [rec] = await records(platform, tenant, "tenant.created")
    by(rec, operator.actor)
    assert rec["resource"] == f"tenant:{slug}"
    assert rec["after"] == {
        "slug": slug,
        "name": "Audited Co",
        "isolation": "shared",
        "plan": "free",
        "server": "default",
    }
    assert "admin_email" in rec["details"]["options"]
    assert "admin_password" not in str(rec)  # generated, shown once, never recorded


@audits("tenantry tenants create")
async def test_tenant_created_on_the_command_line_has_no_actor(
    platform: Platform, settings: Settings
) -> None:
    slug = f"aud{RUN}-cli"
    r = cli(settings, "tenants", "create", slug, "--name", "CLI Co", "--isolation", "schema",
            "--admin-email", f"boss@{slug}.test", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    password = json.loads(r.stdout)["admin_password"]
    tenant = await platform.catalog.by_slug(slug)
    assert tenant is not None
    [rec] = await records(platform, tenant, "tenant.created")
    by(rec, None)
    assert rec["after"]["isolation"] == "schema"
    assert password not in str(rec)


@audits("tenantry tenants suspend", "tenantry tenants activate")
async def test_suspend_and_resume_from_the_command_line_are_audited(
    platform: Platform, settings: Settings, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r = cli(settings, "tenants", "suspend", t.tenant.slug)
    assert r.returncode == 0, r.stderr
    r = cli(settings, "tenants", "activate", t.tenant.slug)
    assert r.returncode == 0, r.stderr
    [suspended] = await records(platform, t.tenant, "tenant.suspended")
    by(suspended, None)
    assert suspended["resource"] == f"tenant:{t.tenant.slug}"
    assert (suspended["before"], suspended["after"]) == (
        {"status": "active"},
        {"status": "suspended"},
    )
    [resumed] = await records(platform, t.tenant, "tenant.resumed")
    assert (resumed["before"], resumed["after"]) == (
        {"status": "suspended"},
        {"status": "active"},
    )


async def test_a_status_change_in_process_names_the_caller_of_its_context(
    platform: Platform, make_tenant: MakeTenant, operator: Operator
) -> None:
    """``Provisioner.set_status`` records whoever is in context (a principal of a request)."""
    from tenantry.kernel.tenancy.context import Principal, tenant_scope

    t = await make_tenant("schema")
    who = Principal("someone", operator.tenant.id, "user")
    with tenant_scope(operator.tenant, who):
        await platform.provisioner.set_status(t.tenant.slug, t.tenant.status.SUSPENDED)
    await platform.provisioner.set_status(t.tenant.slug, t.tenant.status.ACTIVE)
    [rec] = await records(platform, t.tenant, "tenant.suspended")
    by(rec, ("someone", "user"))


# -- plan overrides -----------------------------------------------------------------------------
@audits("PUT /api/v1/entitlements/tenants/{slug}/override")
async def test_plan_override_is_audited_in_the_tenant(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant, operator: Operator
) -> None:
    t = await make_tenant()
    url = f"/api/v1/entitlements/tenants/{t.tenant.slug}/override"
    r = await client.put(url, json={"quotas": {"max_users": 3}}, headers=operator.auth)
    assert r.status_code == 200, r.text
    r = await client.put(url, json={"burst": 7}, headers=operator.auth)
    assert r.status_code == 200, r.text
    second, first = await records(platform, t.tenant, "plan.override_set")
    for rec in (first, second):
        by(rec, operator.actor)
        assert rec["resource"] == f"tenant:{t.tenant.slug}"
        assert rec["details"] == {"plan": "free"}
    assert (first["before"], first["after"]) == (None, {"quotas": {"max_users": 3}})
    assert (second["before"], second["after"]) == ({"quotas": {"max_users": 3}}, {"burst": 7})


# -- feature flags ------------------------------------------------------------------------------
@audits("PUT /api/v1/flags/{name}", "DELETE /api/v1/flags/{name}")
async def test_flag_rules_and_deletion_are_audited_in_the_operator_tenant(
    platform: Platform, client: httpx.AsyncClient, operator: Operator
) -> None:
    name = f"aud-{uuid.uuid4().hex[:8]}"
    body = {"description": "d", "default": False, "plans": ["pro"], "percentage": 10}
    r = await client.put(f"/api/v1/flags/{name}", json=body, headers=operator.auth)
    assert r.status_code == 200, r.text
    r = await client.put(
        f"/api/v1/flags/{name}", json={**body, "percentage": 50}, headers=operator.auth
    )
    assert r.status_code == 200, r.text
    r = await client.delete(f"/api/v1/flags/{name}", headers=operator.auth)
    assert r.status_code == 204, r.text
    mine = [
        e
        for e in await records(platform, operator.tenant, "flag.rules_set")
        if e["resource"] == f"flag:{name}"
    ]
    second, first = mine
    for rec in mine:
        by(rec, operator.actor)
    assert first["before"] is None
    assert first["after"] == {"name": name, **body}
    assert second["before"] == first["after"]
    assert second["after"]["percentage"] == 50
    [deleted] = [
        e
        for e in await records(platform, operator.tenant, "flag.deleted")
        if e["resource"] == f"flag:{name}"
    ]
    by(deleted, operator.actor)
    assert deleted["before"] == {**second["after"], "targets": {}}


@audits("PUT /api/v1/flags/{name}/tenants/{slug}")
async def test_a_flag_target_is_audited_in_the_tenant(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant, operator: Operator
) -> None:
    t = await make_tenant()
    name = f"aud-{uuid.uuid4().hex[:8]}"
    url = f"/api/v1/flags/{name}/tenants/{t.tenant.slug}"
    for enabled in (True, None):
        r = await client.put(url, json={"enabled": enabled}, headers=operator.auth)
        assert r.status_code == 200, r.text
    cleared, on = await records(platform, t.tenant, "flag.tenant_set")
    for rec in (cleared, on):
        by(rec, operator.actor)
        assert rec["resource"] == f"flag:{name}"
        assert rec["details"] == {"tenant": t.tenant.slug}
    assert (on["before"], on["after"]) == ({"enabled": None}, {"enabled": True})
    assert (cleared["before"], cleared["after"]) == ({"enabled": True}, {"enabled": None})


@audits("tenantry flags set", "tenantry flags rule")
async def test_flags_from_the_command_line_are_audited(
    platform: Platform, settings: Settings, make_tenant: MakeTenant, operator: Operator
) -> None:
    t = await make_tenant()
    name = f"aud-{uuid.uuid4().hex[:8]}"
    r = cli(settings, "flags", "set", name, "on", "--tenant", t.tenant.slug)
    assert r.returncode == 0, r.stderr
    r = cli(settings, "flags", "rule", name, "--percentage", "20")
    assert r.returncode == 0, r.stderr
    [target] = await records(platform, t.tenant, "flag.tenant_set")
    by(target, None)
    assert target["after"] == {"enabled": True}
    [rule] = [
        e
        for e in await records(platform, operator.tenant, "flag.rules_set")
        if e["resource"] == f"flag:{name}"
    ]
    by(rule, None)
    assert rule["before"]["percentage"] == 0  # created by `flags set`
    assert rule["after"]["percentage"] == 20


# -- exports ------------------------------------------------------------------------------------
@audits(
    "POST /api/v1/exports",
    "POST /api/v1/exports/{export_id}/cancel",
    "POST /api/v1/exports/schedules",
    "DELETE /api/v1/exports/schedules/{schedule_id}",
)
async def test_exports_and_schedules_are_audited(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant(plan="pro")
    actor = await me(client, t.auth)
    body = {"source": "exports.history", "format": "csv", "filters": {}}
    r = await client.post("/api/v1/exports", json=body, headers={**t.auth, "Idempotency-Key": "k1"})
    assert r.status_code == 202, r.text
    eid = r.json()["id"]
    replay = await client.post(
        "/api/v1/exports", json=body, headers={**t.auth, "Idempotency-Key": "k1"}
    )
    assert replay.status_code == 200, replay.text  # a replay changes nothing: no record
    r = await client.post(f"/api/v1/exports/{eid}/cancel", headers=t.auth)
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/exports/{eid}/cancel", headers=t.auth)
    assert r.status_code == 200, r.text  # already cancelled: nothing changes, no record

    [requested] = await records(platform, t.tenant, "export.requested")
    by(requested, actor)
    assert requested["resource"] == f"export:{eid}"
    assert requested["after"]["source"] == "exports.history"
    assert requested["after"]["format"] == "csv"
    [cancelled] = await records(platform, t.tenant, "export.cancelled")
    by(cancelled, actor)
    assert cancelled["resource"] == f"export:{eid}"
    assert cancelled["before"] == {"status": "queued"}
    assert cancelled["after"] == {"status": "cancelled"}

    schedule = {
        **body,
        "cron": "0 6 * * *",
        "timezone": "Europe/Paris",
        "notify": {"email": "ops@example.com"},
    }
    r = await client.post("/api/v1/exports/schedules", json=schedule, headers=t.auth)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    r = await client.delete(f"/api/v1/exports/schedules/{sid}", headers=t.auth)
    assert r.status_code == 200, r.text
    [created] = await records(platform, t.tenant, "export.schedule_created")
    by(created, actor)
    assert created["resource"] == f"export_schedule:{sid}"
    assert created["after"]["cron"] == "0 6 * * *"
    assert created["after"]["timezone"] == "Europe/Paris"
    assert created["after"]["notify"] == ["email"]  # the channel, not the target
    assert "ops@example.com" not in str(created)
    [disabled] = await records(platform, t.tenant, "export.schedule_disabled")
    by(disabled, actor)
    assert (disabled["before"], disabled["after"]) == ({"enabled": True}, {"enabled": False})


# -- authorization policies ---------------------------------------------------------------------
@audits(
    "PUT /api/v1/authz/policies/{name}",
    "DELETE /api/v1/authz/policies/{name}",
    "PUT /api/v1/authz/subjects/{subject}/attributes",
)
async def test_policies_and_attributes_are_audited(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    actor = await me(client, t.auth)
    policy = {"effect": "deny", "actions": ["exports:write"], "roles": ["viewer"]}
    r = await client.put("/api/v1/authz/policies/no-exports", json=policy, headers=t.auth)
    assert r.status_code == 200, r.text
    r = await client.delete("/api/v1/authz/policies/no-exports", headers=t.auth)
    assert r.status_code == 204, r.text
    r = await client.put(
        "/api/v1/authz/subjects/user-1/attributes", json={"region": "eu"}, headers=t.auth
    )
    assert r.status_code == 200, r.text

    [put] = await records(platform, t.tenant, "authz.policy.put")
    by(put, actor)
    assert put["resource"] == "policy:no-exports"
    assert put["before"] is None
    assert put["after"]["effect"] == "deny"
    [deleted] = await records(platform, t.tenant, "authz.policy.delete")
    by(deleted, actor)
    assert deleted["before"]["actions"] == ["exports:write"]
    [attrs] = await records(platform, t.tenant, "authz.attributes.put")
    by(attrs, actor)
    assert attrs["resource"] == "subject:user-1"
    assert (attrs["before"], attrs["after"]) == (None, {"region": "eu"})


# -- identity (the module's own records, through its routes) ------------------------------------
@audits(
    "POST /api/v1/identity/users",
    "POST /api/v1/identity/users/{user_id}/disable",
    "POST /api/v1/identity/users/{user_id}/enable",
    "DELETE /api/v1/identity/users/{user_id}",
    "POST /api/v1/identity/clients",
    "POST /api/v1/identity/clients/{id_}/disable",
    "POST /api/v1/identity/roles",
    "PUT /api/v1/identity/roles/{name}",
    "DELETE /api/v1/identity/roles/{name}",
)
async def test_identity_changes_are_audited(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    t: TenantFixture = await make_tenant()
    actor = await me(client, t.auth)
    api = "/api/v1/identity"
    role = {"name": "auditor", "actions": ["audit:read"]}
    assert (await client.post(f"{api}/roles", json=role, headers=t.auth)).status_code == 201
    r = await client.put(
        f"{api}/roles/auditor", json={"actions": ["audit:read", "exports:read"]}, headers=t.auth
    )
    assert r.status_code == 200, r.text
    user = {"email": f"u@{t.tenant.slug}.test", "password": PASSWORD, "roles": ["auditor"]}
    r = await client.post(f"{api}/users", json=user, headers=t.auth)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    for step in ("disable", "enable"):
        r = await client.post(f"{api}/users/{uid}/{step}", headers=t.auth)
        assert r.status_code == 200, r.text
    assert (await client.delete(f"{api}/users/{uid}", headers=t.auth)).status_code == 204
    r = await client.post(f"{api}/clients", json={"name": "etl", "roles": []}, headers=t.auth)
    assert r.status_code == 201, r.text
    cid, client_id, secret = r.json()["id"], r.json()["client_id"], r.json()["client_secret"]
    r = await client.post(f"{api}/clients/{cid}/disable", headers=t.auth)
    assert r.status_code == 200, r.text
    assert (await client.delete(f"{api}/roles/auditor", headers=t.auth)).status_code == 204

    expected = {
        "identity.role.create": "role:auditor",
        "identity.role.update": "role:auditor",
        "identity.role.delete": "role:auditor",
        "identity.member.add": f"user:{uid}",
        "identity.member.remove": f"user:{uid}",
        "identity.client.create": f"client:{client_id}",
        "identity.client.status": f"client:{cid}",
    }
    for action, resource in expected.items():
        found = await records(platform, t.tenant, action)
        assert found, action
        rec = found[0]
        by(rec, actor)
        if resource is not None:
            assert rec["resource"] == resource, (action, rec)
        assert secret not in str(rec)
    statuses = await records(platform, t.tenant, "identity.member.status")
    assert [e["after"] for e in statuses] == [{"status": "active"}, {"status": "disabled"}]


# -- error tracking -----------------------------------------------------------------------------
class AuditProbeError(RuntimeError):
    pass


@audits("PATCH /api/v1/platform/errors/{group_id}")
async def test_error_triage_is_audited_in_the_operator_tenant(
    platform: Platform, client: httpx.AsyncClient, operator: Operator
) -> None:
    try:
        raise AuditProbeError(f"probe {uuid.uuid4()}")
    except AuditProbeError as exc:
        captured = await platform.observability.errors.capture(exc)
    gid = captured.group_id
    r = await client.patch(
        f"/api/v1/platform/errors/{gid}", json={"status": "ignored"}, headers=operator.auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ignored"
    r = await client.patch(
        "/api/v1/platform/errors/999999999", json={"status": "ignored"}, headers=operator.auth
    )
    assert r.status_code == 404, r.text
    [rec] = [
        e
        for e in await records(platform, operator.tenant, "error.status_set")
        if e["resource"] == f"error_group:{gid}"
    ]
    by(rec, operator.actor)
    assert (rec["before"], rec["after"]) == ({"status": "unresolved"}, {"status": "ignored"})
    assert not [
        e
        for e in await records(platform, operator.tenant, "error.status_set")
        if e["resource"] == "error_group:999999999"
    ]


@audits("tenantry errors resolve")
async def test_error_triage_on_the_command_line_takes_the_same_audited_path(
    platform: Platform, settings: Settings, operator: Operator
) -> None:
    """``tenantry errors resolve`` goes through ``ErrorTracker.set_status`` as the route does.
    Failed before: the command line's triage was not audited."""
    try:
        raise AuditProbeError(f"probe {uuid.uuid4()}")
    except AuditProbeError as exc:
        gid = (await platform.observability.errors.capture(exc)).group_id
    r = cli(settings, "errors", "resolve", str(gid))
    assert r.returncode == 0, r.stderr
    r = cli(settings, "errors", "resolve", str(gid), "--ignore")
    assert r.returncode == 0, r.stderr
    r = cli(settings, "errors", "resolve", "999999999")
    assert r.returncode == 1, r.stderr
    ignored, resolved = [
        e
        for e in await records(platform, operator.tenant, "error.status_set")
        if e["resource"] == f"error_group:{gid}"
    ]
    for rec in (ignored, resolved):
        by(rec, None)
    assert (resolved["before"], resolved["after"]) == (
        {"status": "unresolved"},
        {"status": "resolved"},
    )
    assert (ignored["before"], ignored["after"]) == ({"status": "resolved"}, {"status": "ignored"})


# -- signing keys -------------------------------------------------------------------------------
@audits("tenantry keys rotate")
async def test_key_rotation_is_audited_in_the_operator_tenant(
    platform: Platform, settings: Settings, operator: Operator
) -> None:
    """Failed before: a rotation left no record."""
    await platform.keyring.load()
    old = (await platform.keyring.signing_key()).kid
    r = cli(settings, "keys", "rotate")
    assert r.returncode == 0, r.stderr
    kid = r.stdout.split("new signing key ", 1)[1].split()[0]
    [rec] = await records(platform, operator.tenant, "keys.rotated")
    by(rec, None)
    assert rec["resource"] == f"signing_key:{kid}"
    assert rec["before"] == {"signing": [old]}
    assert rec["after"] == {"signing": [kid], "alg": settings.auth.algorithm}
    async with platform.db.platform_unit_of_work() as uow:
        pem = await uow.fetchval("SELECT private_pem FROM signing_keys WHERE kid = $1", kid)
    assert "PRIVATE KEY" not in str(rec)  # never key material
    assert pem not in str(rec)


# -- dead letters -------------------------------------------------------------------------------
@audits("tenantry messages dead replay", "tenantry messages dead discard")
async def test_dead_letter_replay_and_discard_are_audited_in_the_tenant(
    platform: Platform, settings: Settings, make_tenant: MakeTenant
) -> None:
    """Failed before: neither left a record."""
    t = await make_tenant()
    replayed, discarded = (
        await dead_letter(platform, t.tenant),
        await dead_letter(platform, t.tenant),
    )
    r = cli(settings, "messages", "dead", "replay", str(replayed))
    assert r.returncode == 0, r.stderr
    r = cli(settings, "messages", "dead", "discard", str(discarded))
    assert r.returncode == 0, r.stderr
    r = cli(settings, "messages", "dead", "discard", str(discarded))
    assert r.returncode == 1  # gone: nothing changes, no record
    [rep] = await records(platform, t.tenant, "messaging.dead.replayed")
    by(rep, None)
    assert rep["resource"] == f"dead_letter:{replayed}"
    assert rep["before"]["name"] == "probe.Happened"
    assert rep["before"]["attempts"] == 3
    assert rep["after"] == {"outbox": rep["before"]["message_id"]}
    assert '"n"' not in str(rep["before"])  # the payload is tenant data: not recorded
    [dis] = await records(platform, t.tenant, "messaging.dead.discarded")
    by(dis, None)
    assert dis["resource"] == f"dead_letter:{discarded}"
    assert dis["before"]["last_error"] == "boom"
    assert dis["after"] is None


# -- the cache ----------------------------------------------------------------------------------
@audits("tenantry cache sweep")
async def test_a_cache_sweep_is_audited_in_the_operator_tenant(
    platform: Platform, settings: Settings, make_tenant: MakeTenant, operator: Operator
) -> None:
    """Failed before: the sweep left no record."""
    t = await make_tenant()
    for i in range(3):
        await platform.use(Cache).backend.set(t.tenant.id, f"sweep:{i}", b"1", 0.001, ())
    r = cli(settings, "cache", "sweep")
    assert r.returncode == 0, r.stderr
    removed = int(r.stdout.split()[0])
    assert removed >= 3
    [rec] = await records(platform, operator.tenant, "cache.swept")
    by(rec, None)
    assert rec["resource"] == "cache:postgres"
    assert rec["after"] == {"removed": removed}


# -- API clients ----------------------------------------------------------------------------------
@audits("tenantry clients create")
async def test_a_client_created_on_the_command_line_is_audited(
    platform: Platform, settings: Settings, make_tenant: MakeTenant
) -> None:
    t = await make_tenant()
    r = cli(settings, "clients", "create", "--tenant", t.tenant.slug, "--name", "etl", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    [rec] = await records(platform, t.tenant, "identity.client.create")
    by(rec, None)
    assert rec["resource"] == f"client:{out['client_id']}"
    assert out["client_secret"] not in str(rec)


# -- the meta test ------------------------------------------------------------------------------
CLI = "tenantry "


def proven_here(cli_commands: bool = False) -> dict[str, str]:
    """What the tests here prove audited: the routes, or (``cli_commands``) the commands."""
    return {
        route: name
        for name, fn in globals().items()
        if name.startswith("test_")
        for route in getattr(fn, "__audits__", ())
        if route.startswith(CLI) is cli_commands
    }


def cli_commands() -> set[str]:
    """Every runnable ``tenantry`` command, plugins included (as the bad-values test walks
    them)."""
    tenantry_cli._plugins()
    found: set[str] = set()

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        commands = getattr(cmd, "commands", None)
        if commands is None or getattr(cmd, "invoke_without_command", False):
            found.add(CLI + " ".join(path))
        for name, sub in (commands or {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(tenantry_cli.app), ())
    found.discard(CLI)
    return found


def test_every_mutating_route_is_audited_or_allowlisted(platform: Platform) -> None:
    doc = create_app(platform, manage_lifecycle=False).openapi()
    routes = {
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method in item
        if method.upper() in MUTATING
    }
    here = proven_here()
    known = {**here, **AUDITED_ELSEWHERE, **NOT_AUDITED}
    assert not set(here) & set(NOT_AUDITED), "audited and allowlisted at once"
    unaccounted = sorted(routes - set(known))
    assert not unaccounted, (
        "mutating routes with neither an audit test here (@audits) nor an entry in "
        f"AUDITED_ELSEWHERE / NOT_AUDITED: {unaccounted}"
    )
    stale = sorted(set(known) - routes)
    assert not stale, f"entries for routes that no longer exist: {stale}"


def test_every_cli_command_is_audited_or_allowlisted() -> None:
    commands = cli_commands()
    here = proven_here(cli_commands=True)
    assert not set(here) & set(CLI_NOT_AUDITED), "audited and allowlisted at once"
    unaccounted = sorted(commands - set(here) - set(CLI_NOT_AUDITED))
    assert not unaccounted, (
        "commands with neither an audit test here (@audits) nor an entry in "
        f"CLI_NOT_AUDITED: {unaccounted}"
    )
    stale = sorted((set(here) | set(CLI_NOT_AUDITED)) - commands)
    assert not stale, f"entries for commands that no longer exist: {stale}"
