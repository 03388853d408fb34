"""IdentityService on the in-memory fakes (identity_fakes.py): tokens, members,
API clients and roles, without PostgreSQL. What the service records on its unit of work
(events, audit) is kept only when the unit of work commits; the domain errors it raises map
at the edge (routes.problem) to the problems clients have always seen."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from identity_fakes import Fakes, fake_service, make_tenant
from tenantry.kernel.auth.actions import PlatformActionRefused
from tenantry.kernel.errors import Conflict as ConflictProblem
from tenantry.kernel.errors import NotFound as NotFoundProblem
from tenantry.kernel.errors import Unauthorized, ValidationFailed
from tenantry.kernel.tenancy.context import Principal
from tenantry.kernel.tenancy.model import IsolationMode, TenantStatus
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry_identity.application.errors import (
    BAD_CREDENTIALS,
    Conflict,
    IdentityError,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    PlatformGrantRefused,
)
from tenantry_identity.contracts import ApiClientCreated, UserAddedToTenant
from tenantry_identity.infrastructure.tenants import CatalogTenants
from tenantry_identity.routes import IdentityClients, checked, problem

PW = "a-long-enough-password"
KNOWN = {"ledger:read": "", "ledger:write": "", "identity:admin": ""}


async def seeded(isolation: IsolationMode = IsolationMode.SHARED, **kw: Any) -> Fakes:
    """A tenant ``acme`` with its roles (admin, viewer) and an admin login."""
    tenant = make_tenant("acme", isolation=isolation)
    f = fake_service(tenant, **kw)
    async with f.units.tenant(tenant) as uow:
        await f.service.seed_tenant(
            uow,
            tenant,
            {"admin_email": "Admin@Acme.test", "admin_password": PW},
            {"viewer": ["ledger:read"]},
        )
    return f


def who(subject: str, kind: str) -> Principal:
    return Principal(subject, uuid.uuid4(), kind)


def acme(f: Fakes) -> Any:
    return next(iter(f.tenants.tenants.values()))


def user(f: Fakes, email: str) -> uuid.UUID:
    return next(i for i, u in f.units.state.users.items() if u["email"] == email)


# -- tokens ---------------------------------------------------------------------------------
async def test_password_grant_is_one_unit_of_work_for_a_tenant_on_the_main_database() -> None:
    f = await seeded()
    f.units.opened.clear()
    out = await f.service.password_grant("admin@acme.test", PW, "acme")
    assert out.as_dict()["token_type"] == "Bearer"
    assert out.scope == "*"
    assert f.units.opened == ["tenant"]  # login, membership and role actions: one statement
    (issued,) = f.tokens.issued
    assert issued["sub"] == str(user(f, "admin@acme.test"))
    assert issued["roles"] == ["admin"]
    assert issued["kind"] == "user"


async def test_password_grant_of_a_database_mode_tenant_reads_roles_after_the_password() -> None:
    f = await seeded(IsolationMode.DATABASE)
    f.units.opened.clear()
    await f.service.password_grant("admin@acme.test", PW, "acme")
    assert f.units.opened == ["members", "tenant"]
    f.units.opened.clear()
    with pytest.raises(InvalidCredentials):
        await f.service.password_grant("admin@acme.test", "wrong-password!", "acme")
    assert f.units.opened == ["members"]  # no role read for a refused login


async def _failure(f: Fakes, username: str, password: str, slug: str) -> tuple[Any, ...]:
    before = len(f.hasher.verified)
    with pytest.raises(IdentityError) as caught:
        await f.service.password_grant(username, password, slug)
    assert len(f.hasher.verified) == before + 1, "every failure spends one password verify"
    p = problem(caught.value)
    extra = tuple(sorted(p.extra.items()))
    return type(caught.value), str(caught.value), p.status, p.type_slug, p.detail, extra


async def test_password_grant_failures_are_indistinguishable() -> None:
    f = await seeded()
    t = acme(f)
    bob = (await f.service.add_member(t, "bob@acme.test", PW, []))[0]
    await f.service.add_member(t, "carol@acme.test", PW, [])
    await f.service.set_member_status(t, user(f, "carol@acme.test"), "disabled")
    f.units.state.users[bob]["status"] = "disabled"  # the login itself disabled
    f.tenants.add(make_tenant("paused", status=TenantStatus.SUSPENDED))
    outcomes = {
        "unknown tenant": await _failure(f, "admin@acme.test", PW, "nope"),
        "no tenant": await _failure(f, "admin@acme.test", PW, ""),
        "suspended tenant": await _failure(f, "admin@acme.test", PW, "paused"),
        "unknown user": await _failure(f, "nobody@acme.test", PW, "acme"),
        "not an e-mail": await _failure(f, "not an e-mail", PW, "acme"),
        "wrong password": await _failure(f, "admin@acme.test", PW + "x", "acme"),
        "disabled login": await _failure(f, "bob@acme.test", PW, "acme"),
        "disabled membership": await _failure(f, "carol@acme.test", PW, "acme"),
    }
    assert len(set(outcomes.values())) == 1, outcomes
    kind, message, status, slug, detail, extra = next(iter(outcomes.values()))
    assert (kind, message, status, slug) == (
        InvalidCredentials,
        BAD_CREDENTIALS,
        401,
        "unauthorized",
    )
    assert detail == BAD_CREDENTIALS
    assert extra == (("error", "invalid_grant"),)
    assert not f.tokens.issued


async def test_the_slug_lookup_goes_to_the_catalog_once_per_grant() -> None:
    f = await seeded()
    f.tenants.lookups = 0
    await f.service.password_grant("admin@acme.test", PW, "acme")
    assert f.tenants.lookups == 1


async def test_client_credentials_grant_and_its_failures() -> None:
    f = await seeded()
    t = acme(f)
    client, secret = await f.service.create_client(t, " robot ", ["viewer"])
    assert client.name == "robot"
    f.units.opened.clear()
    out = await f.service.client_credentials_grant(client.client_id, secret)
    assert out.scope == "ledger:read"
    assert f.units.opened == ["platform", "tenant"]  # finds the client's tenant, its roles
    f.units.opened.clear()
    again = await f.service.client_credentials_grant(client.client_id, secret)
    assert again.scope == "ledger:read"
    assert f.units.opened == ["tenant"]  # its tenant known: one unit of work in its store
    assert f.tokens.issued[-1]["sub"] == f"client:{client.client_id}"
    assert f.tokens.issued[-1]["kind"] == "client"

    failures = set()
    for cid, sec in [(client.client_id, secret + "x"), ("tc_unknown", secret), ("", secret)]:
        with pytest.raises(InvalidCredentials) as caught:
            await f.service.client_credentials_grant(cid, sec)
        p = problem(caught.value)
        failures.add((p.status, p.detail, tuple(p.extra.items())))
    await f.service.set_client_status(t, client.id, "disabled")
    with pytest.raises(InvalidCredentials) as caught:
        await f.service.client_credentials_grant(client.client_id, secret)
    p = problem(caught.value)
    failures.add((p.status, p.detail, tuple(p.extra.items())))
    assert failures == {(401, BAD_CREDENTIALS, (("error", "invalid_client"),))}


async def test_a_client_of_a_suspended_tenant_is_refused() -> None:
    f = await seeded()
    t = acme(f)
    client, secret = await f.service.create_client(t, "robot", [])
    await f.service.client_credentials_grant(client.client_id, secret)
    f.tenants.add(
        type(t)(**{**{s: getattr(t, s) for s in t.__slots__}, "status": TenantStatus.SUSPENDED})
    )
    with pytest.raises(InvalidCredentials):
        await f.service.client_credentials_grant(client.client_id, secret)


async def test_principal_active() -> None:
    f = await seeded()
    t = acme(f)
    admin = user(f, "admin@acme.test")
    client, _ = await f.service.create_client(t, "robot", [])
    active = f.service.principal_active
    assert await active(t, who(str(admin), "user"))
    assert await active(t, who(f"client:{client.client_id}", "client"))
    assert not await active(t, who(client.client_id, "client"))
    assert not await active(t, who("not-a-uuid", "user"))
    await f.service.set_client_status(t, client.id, "disabled")
    assert not await active(t, who(f"client:{client.client_id}", "client"))


# -- members --------------------------------------------------------------------------------
async def test_add_member_creates_the_login_publishes_and_audits() -> None:
    f = await seeded()
    t = acme(f)
    f.units.events.clear()
    f.units.audits.clear()
    user_id, created = await f.service.add_member(t, " Bob@Acme.TEST ", PW, ["viewer", "viewer"])
    assert created
    assert f.units.state.users[user_id]["email"] == "bob@acme.test"
    (event,) = f.units.events
    assert event == UserAddedToTenant(
        user_id=user_id, email="bob@acme.test", roles=["viewer"], onboarding=False
    )
    (record,) = f.units.audits
    assert record["action"] == "identity.member.add"
    assert record["resource"] == f"user:{user_id}"
    assert record["after"] == {"roles": ["viewer"]}
    # the same person in another tenant: no new login, no password needed
    other = f.tenants.add(make_tenant("other"))
    async with f.units.tenant(other) as uow:
        await f.service.seed_tenant(uow, other, {}, {})
    assert await f.service.add_member(other, "bob@acme.test", None, []) == (user_id, False)
    members, _ = await f.service.members(other, None)
    assert [m.email for m in members] == ["bob@acme.test"]
    assert await f.service.member_count(t) == 2


async def test_add_member_refusals_leave_nothing() -> None:
    f = await seeded()
    t = acme(f)
    await f.service.add_member(t, "bob@acme.test", PW, [])
    f.units.events.clear()
    f.units.audits.clear()
    users = dict(f.units.state.users)
    cases: list[tuple[Any, type[IdentityError], int, str]] = [
        (
            ("bob@acme.test", PW, []),
            Conflict,
            409,
            "bob@acme.test is already a member of this tenant",
        ),
        (("new@acme.test", PW, ["ghost", "admin"]), NotFound, 404, "unknown roles: ghost"),
        (
            ("new@acme.test", None, []),
            NotFound,
            404,
            "no login has this e-mail; give a password to create one",
        ),
        (
            ("new@acme.test", "short", []),
            InvalidInput,
            422,
            "a password needs at least 12 characters",
        ),
        (("not-an-email", PW, []), InvalidInput, 422, "not a valid e-mail address"),
        (("new@acme.test", PW, ["Bad Role"]), InvalidInput, 422, "invalid role name 'Bad Role'"),
    ]
    for args, kind, status, message in cases:
        with pytest.raises(kind) as caught:
            await f.service.add_member(t, *args)
        p = problem(caught.value)
        assert (p.status, p.detail) == (status, message)
    assert problem(NotFound("x", [{"field": "roles"}])).errors == [{"field": "roles"}]
    assert f.units.events == []
    assert f.units.audits == []
    assert f.units.state.users == users


async def test_disabling_or_removing_yourself_is_refused() -> None:
    f = await seeded()
    t = acme(f)
    admin = user(f, "admin@acme.test")
    with pytest.raises(Conflict, match="you cannot disable yourself"):
        await f.service.set_member_status(t, admin, "disabled", by=str(admin))
    with pytest.raises(Conflict, match="you cannot remove yourself"):
        await f.service.remove_member(t, admin, str(admin))
    assert isinstance(problem(Conflict("x")), ConflictProblem)
    bob = (await f.service.add_member(t, "bob@acme.test", PW, ["viewer"]))[0]
    f.units.audits.clear()
    await f.service.set_member_status(t, bob, "disabled", by=str(admin))
    await f.service.set_member_status(t, bob, "active")
    await f.service.remove_member(t, bob, str(admin))
    assert [(a["action"], a["before"], a["after"]) for a in f.units.audits] == [
        ("identity.member.status", {"status": "active"}, {"status": "disabled"}),
        ("identity.member.status", {"status": "disabled"}, {"status": "active"}),
        ("identity.member.remove", {"roles": ["viewer"], "status": "active"}, None),
    ]
    for call in (
        f.service.set_member_status(t, bob, "active"),
        f.service.remove_member(t, bob, str(admin)),
    ):
        with pytest.raises(NotFound, match="no such user in this tenant"):
            await call
    assert isinstance(problem(NotFound("x")), NotFoundProblem)


async def test_my_tenants() -> None:
    f = await seeded()
    admin = user(f, "admin@acme.test")
    mine = await f.service.my_tenants(who(str(admin), "user"))
    assert [t["roles"] for t in mine] == [["admin"]]
    assert await f.service.my_tenants(who("client:x", "client")) == []


# -- API clients ----------------------------------------------------------------------------
async def test_create_client_publishes_and_audits_and_never_carries_the_secret() -> None:
    f = await seeded()
    t = acme(f)
    f.units.events.clear()
    f.units.audits.clear()
    client, secret = await f.service.create_client(t, "robot", ["viewer"])
    assert client.client_id.startswith("tc_")
    assert f.units.events == [
        ApiClientCreated(client_id=client.client_id, name="robot", roles=["viewer"])
    ]
    assert secret not in repr(f.units.events) + repr(f.units.audits)
    assert f.units.audits[0]["action"] == "identity.client.create"
    assert [c.client_id for c in await f.service.clients(t)] == [client.client_id]
    for name in ("", "   ", "x" * 201):
        with pytest.raises(InvalidInput, match="name must be 1-200 characters"):
            await f.service.create_client(t, name, [])
    with pytest.raises(NotFound, match="unknown roles: ghost"):
        await f.service.create_client(t, "r2", ["ghost"])
    with pytest.raises(NotFound, match="no such API client"):
        await f.service.set_client_status(t, uuid.uuid4(), "disabled")
    assert len(f.units.events) == 1


# -- roles ----------------------------------------------------------------------------------
async def test_roles_are_created_replaced_deleted_audited_and_announced() -> None:
    f = await seeded()
    t = acme(f)
    f.units.audits.clear()
    svc = f.service
    await svc.save_role(t, "clerk", ["ledger:write", "ledger:read"], "d", KNOWN, create=True)
    await svc.save_role(t, "clerk", ["ledger:*"], "", KNOWN, create=False)
    assert {r["name"]: r["actions"] for r in await svc.roles(t)}["clerk"] == ["ledger:*"]
    await svc.delete_role(t, "clerk")
    assert "clerk" not in {r["name"] for r in await svc.roles(t)}
    assert [a["action"] for a in f.units.audits] == [
        "identity.role.create",
        "identity.role.update",
        "identity.role.delete",
    ]
    assert f.units.audits[0]["after"] == {
        "name": "clerk",
        "actions": ["ledger:read", "ledger:write"],
        "description": "d",
    }
    assert f.units.audits[1]["before"]["actions"] == ["ledger:read", "ledger:write"]
    assert f.units.notified == 3  # every change drops the authorization caches


async def test_role_refusals() -> None:
    f = await seeded()
    t = acme(f)
    svc = f.service
    with pytest.raises(Conflict, match="a role named 'viewer' already exists"):
        await svc.save_role(t, "viewer", [], "", KNOWN, create=True)
    with pytest.raises(NotFound, match="no role named 'ghost'"):
        await svc.save_role(t, "ghost", [], "", KNOWN, create=False)
    with pytest.raises(NotFound, match="no role named 'ghost'"):
        await svc.delete_role(t, "ghost")
    with pytest.raises(Conflict, match="the admin role cannot be changed"):
        await svc.save_role(t, "admin", [], "", KNOWN, create=False)
    with pytest.raises(Conflict, match="the admin role cannot be deleted"):
        await svc.delete_role(t, "admin")
    with pytest.raises(InvalidInput, match="unknown actions: nope:x") as bad:
        await svc.save_role(t, "r", ["ledger:read", "nope:x"], "", KNOWN, create=True)
    assert problem(bad.value).errors == [{"field": "actions", "message": "unknown action 'nope:x'"}]
    with pytest.raises(InvalidInput, match="invalid role name"):
        await svc.save_role(t, "Bad Name", [], "", KNOWN, create=True)
    assert f.units.notified == 0


async def test_platform_grants_only_in_the_operator_tenant() -> None:
    f = await seeded()
    t = acme(f)
    for grants in (["*"], ["ledger:read", "platform:admin"], ["platform:*"]):
        with pytest.raises(PlatformGrantRefused) as caught:
            await f.service.save_role(t, "op", grants, "", KNOWN, create=True)
        p = problem(caught.value)
        assert isinstance(p, PlatformActionRefused)
        assert (p.status, p.type_slug) == (422, "platform-action")
        assert p.errors is not None
        assert [e["field"] for e in p.errors] == [
            f"actions.{i}" for i, g in enumerate(grants) if g != "ledger:read"
        ]
    op = await seeded(operator="acme")
    await op.service.save_role(acme(op), "op", ["*"], "", KNOWN, create=True)


# -- provisioning ---------------------------------------------------------------------------
def _request(**options: Any) -> ProvisionRequest:
    return ProvisionRequest("t1", "T1", IsolationMode.SHARED, options=options)


def test_the_onboarding_request_check() -> None:
    check = f_check = fake_service().service.check_onboarding_request
    check(_request(admin_email="a@b.test", admin_password=PW))
    check(_request())
    for options, field, message in [
        ({"admin_password": PW}, "admin_password", "an admin password needs an admin e-mail"),
        ({"admin_email": "nope"}, "admin_email", "not a valid e-mail address"),
        ({"admin_email": "a@b.test", "admin_password": "x"}, "admin_password", None),
    ]:
        with pytest.raises(InvalidInput) as caught:
            f_check(_request(**options))
        p = problem(caught.value)
        assert isinstance(p, ValidationFailed)
        assert p.status == 422
        assert p.detail.startswith(f"{field}: ")
        assert p.errors is not None
        assert p.errors[0]["field"] == field
        if message:
            assert p.errors[0]["message"] == message


async def test_the_onboarding_compensation_forgets_only_the_login_it_created() -> None:
    tenant = make_tenant("acme")
    f = fake_service(tenant)
    new_id = uuid.uuid4()
    async with f.units.tenant(tenant) as uow:
        out = await f.service.seed_tenant(
            uow, tenant, {"admin_email": "a@acme.test", "new_admin_user_id": str(new_id)}, {}
        )
    assert out["admin_user_id"] == str(new_id)
    assert "admin_password" in out  # generated: shown once
    await f.service.unseed_tenant(tenant.id, {"new_admin_user_id": str(new_id)})
    assert new_id not in f.units.state.users


def test_an_unknown_kind_is_a_422() -> None:
    assert isinstance(problem(IdentityError("x")), ValidationFailed)
    assert isinstance(problem(InvalidCredentials("password")), Unauthorized)


# -- the catalog's cache by slug (infrastructure/tenants.py) --------------------------------
class CountingCatalog:
    """The kernel catalog's two reads: ``get`` is its cache (by id), ``by_slug`` a query."""

    def __init__(self, *tenants: Any) -> None:
        self.tenants = {t.id: t for t in tenants}
        self.queries = 0

    async def get(self, tenant_id: uuid.UUID) -> Any:
        return self.tenants.get(tenant_id)

    async def by_slug(self, slug: str) -> Any:
        self.queries += 1
        return next((t for t in self.tenants.values() if t.slug == slug), None)


async def test_tenants_by_slug_query_the_catalog_once_per_slug() -> None:
    acme_ = make_tenant("acme")
    catalog = CountingCatalog(acme_)
    tenants = CatalogTenants(catalog)
    for _ in range(3):
        assert await tenants.by_slug("acme") == acme_
    assert catalog.queries == 1
    for _ in range(2):
        assert await tenants.by_slug("nope") is None  # an unknown slug is never remembered
    assert catalog.queries == 3
    # the tenant gone (purged) and its slug taken again: found afresh
    del catalog.tenants[acme_.id]
    again = make_tenant("acme")
    catalog.tenants[again.id] = again
    assert await tenants.by_slug("acme") == again
    assert await tenants.by_id(again.id) == again


async def test_the_edges_outside_http_see_the_same_problems() -> None:
    """The ClientIssuer port (the CLI) and the provisioner's check raise problems, as before."""
    f = await seeded()
    clients = IdentityClients(f.service)
    with pytest.raises(NotFoundProblem, match="unknown roles: ghost"):
        await clients.create_client(acme(f), "robot", ["ghost"])
    with pytest.raises(ValidationFailed, match="name must be 1-200 characters"):
        await clients.create_client(acme(f), "", [])
    client, _ = await clients.create_client(acme(f), "robot", [])
    assert client.name == "robot"
    with pytest.raises(ValidationFailed, match="admin_email: not a valid e-mail address"):
        checked(f.service.check_onboarding_request)(_request(admin_email="nope"))
