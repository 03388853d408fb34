"""Feature flags: evaluation order, stable rollouts, the CLI and admin API, refresh on change
in every process, the OpenFeature provider, routes behind a flag."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest
from openfeature import api as openfeature
from openfeature.evaluation_context import EvaluationContext
from starlette.requests import Request

from tenantry.capabilities import flags
from tenantry.capabilities.entitlements.plans import Plans
from tenantry.capabilities.flags.provider import TenantryProvider
from tenantry.capabilities.flags.store import Flag, FlagStore
from tenantry.kernel.config import Settings
from tenantry.kernel.errors import NotFound
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.context import tenant_scope
from tenantry.kernel.tenancy.model import IsolationMode, Tenant, TenantStatus
from tests.cli import cli
from tests.conftest import MakeTenant


def fake_tenant(plan: str = "free") -> Tenant:
    return Tenant(
        uuid.uuid4(),
        "x",
        "X",
        IsolationMode.SHARED,
        TenantStatus.ACTIVE,
        plan,
        "default",
        None,
        "tenant_shared",
        datetime.now(UTC),
    )


def test_evaluation_order() -> None:
    store = FlagStore(None, lambda t: frozenset({"plan-given"}) if t.plan == "pro" else frozenset())  # type: ignore[arg-type]
    free, pro = fake_tenant(), fake_tenant("pro")
    store.flags = {
        "f": Flag("f", default_on=False, plans=frozenset({"enterprise"})),
        "plan-given": Flag("plan-given"),
        "on": Flag("on", default_on=True),
    }
    store.targets = {("f", free.id): True, ("on", free.id): False}
    assert store.evaluate("f", free).reason == "target"
    assert store.enabled("f", free)
    assert not store.enabled("f", pro)
    assert store.evaluate("plan-given", pro).reason == "plan"
    assert not store.enabled("on", free)
    assert store.evaluate("on", pro).reason == "default"
    assert store.evaluate("missing", pro) == flags.Evaluation(False, "unknown")
    ent = fake_tenant("enterprise")
    assert store.evaluate("f", ent).reason == "plan"


def test_percentage_rollout_is_stable_and_grows() -> None:
    store = FlagStore(None)  # type: ignore[arg-type]
    tenants = [fake_tenant() for _ in range(2000)]
    counts = []
    previous: set[uuid.UUID] = set()
    for pct in (10, 50, 90):
        store.flags = {"r": Flag("r", percentage=pct)}
        on = {t.id for t in tenants if store.enabled("r", t)}
        assert previous <= on  # nobody falls out as the rollout grows
        previous = on
        counts.append(len(on) / len(tenants))
    for got, want in zip(counts, (0.1, 0.5, 0.9), strict=True):
        assert abs(got - want) < 0.05


async def test_cli_and_api_reach_every_process(
    platform: Platform, client: httpx.AsyncClient, make_tenant: MakeTenant, settings: Settings
) -> None:
    t = await make_tenant()
    name = f"beta-{t.tenant.slug}"
    r = cli(settings, "flags", "set", name, "--tenant", t.tenant.slug, "on")
    assert r.returncode == 0, r.stderr
    assert "on" in r.stdout
    for _ in range(100):  # the CLI is another process: NOTIFY refreshes our snapshot
        mine = (await client.get("/api/v1/flags/mine", headers=t.auth)).json()
        if mine.get(name):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the running process never saw the flag turned on")
    r = cli(settings, "flags", "set", name, "--tenant", "no-such-tenant", "on")
    assert r.returncode == 1
    assert "no tenant" in r.stderr
    # Operators only: a tenant admin cannot change flags.
    res = await client.put(f"/api/v1/flags/{name}", headers=t.auth, json={"default": True})
    assert res.status_code == 403
    store: FlagStore = platform.use(FlagStore)
    await store.set_target(name, t.tenant, None)
    assert not store.enabled(name, t.tenant)


async def test_plan_flags_and_openfeature(platform: Platform, make_tenant: MakeTenant) -> None:
    t = await make_tenant()
    store: FlagStore = platform.use(FlagStore)
    plans: Plans = platform.use(Plans)
    await store.put(Flag("of-plan-flag", "given by the plan"))
    await plans.set_override(t.tenant, {"flags": ["of-plan-flag"]})
    await plans.for_tenant(t.tenant)
    openfeature.set_provider(TenantryProvider(store))
    try:
        of = openfeature.get_client()
        with tenant_scope(t.tenant):
            details = of.get_boolean_details("of-plan-flag", False)
            assert details.value is True
            assert of.get_boolean_value("no-such-flag", True) is True
        other = await make_tenant()
        with tenant_scope(other.tenant):
            assert of.get_boolean_value("of-plan-flag", True) is False
        assert of.get_boolean_value("of-plan-flag", True) is True  # no tenant: the default
        ctx = EvaluationContext(targeting_key=str(t.tenant.id))
        provider = TenantryProvider(store, {t.tenant.id: t.tenant}.get)
        assert provider.resolve_boolean_details("of-plan-flag", False, ctx).value is True
    finally:
        openfeature.clear_providers()


async def test_route_behind_a_flag(platform: Platform, make_tenant: MakeTenant) -> None:
    t = await make_tenant()
    store: FlagStore = platform.use(FlagStore)
    request = Request(
        {
            "type": "http",
            "app": SimpleNamespace(state=SimpleNamespace(platform=platform)),
            "headers": [],
        }
    )
    gate = flags.require("dark-route")
    with tenant_scope(t.tenant):
        with pytest.raises(NotFound):
            await gate(request)
        await store.set_target("dark-route", t.tenant, True)
        await gate(request)
        assert flags.enabled(request, "dark-route")
