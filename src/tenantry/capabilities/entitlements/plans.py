"""Plans: one definition per plan drives rate limits, quotas, default flags and modules.

Defined in config (``[plans.<name>]``, defaults below when absent) and overridable per tenant
(``tenantry.plan_overrides``, a partial plan deep-merged over the tenant's plan). Resolved
plans are cached per tenant for ``ttl`` seconds and dropped on every process at once when an
override changes (``NOTIFY tenantry_plans``). The override itself (the tenant's own
settings) is read through the platform cache when one is given: read path
``entitlements:settings``, 3,600 s, so a process's 5-second copy is refilled from the cache's
L1 or its table instead of a platform transaction; ``set_override`` invalidates it after its
commit, and the NOTIFY makes every other process's next read load from the table and
overwrite the cached entry. Setting an override is audited in the tenant's
log, in the same transaction (``plan.override_set``, the override before and after:
kernel/tenancy/audit).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictFloat, ValidationError

from tenantry.capabilities.entitlements.sql import SELECT_OVERRIDE, UPSERT_OVERRIDE
from tenantry.kernel.db.database import Database
from tenantry.kernel.errors import ConfigError, ValidationFailed
from tenantry.kernel.http.types import JSON_INT, JsonInt
from tenantry.kernel.tenancy.audit import PlatformAudit, record
from tenantry.kernel.tenancy.context import require_tenant, tenant_scope
from tenantry.kernel.tenancy.model import Tenant
from tenantry.kernel.tenancy.provisioning import ProvisionRequest

if TYPE_CHECKING:
    from tenantry.capabilities.cache import Cache

CHANNEL = "tenantry_plans"
#: The tenant settings' read path (``entitlements:settings:override``).
SETTINGS_PREFIX = "entitlements:settings"
SETTINGS_SUFFIX = "override"
SETTINGS_TTL_S = 3600.0
QUOTAS = ("max_users", "max_accounts", "max_export_rows", "max_concurrent_exports")


class RouteLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Sustained requests per second on the route.
    rate_per_s: float = Field(gt=0)
    #: Requests at once on the route.
    burst: int = Field(ge=1)


class PlanConfig(BaseModel):
    """``[plans.<plan>]``: one plan (a plan named here replaces the built-in one)."""

    model_config = ConfigDict(extra="forbid")
    #: Sustained requests per second per tenant.
    rate_per_s: float = Field(gt=0)
    #: Requests at once per tenant (token bucket size).
    burst: int = Field(ge=1)
    #: ``None`` or absent: unlimited; 0: not included in the plan.
    quotas: dict[str, int | None] = Field(default_factory=dict)
    #: Feature flags on by default for the plan.
    flags: list[str] = Field(default_factory=list)
    #: Module names whose endpoints are enabled; ``["*"]``: all.
    modules: list[str] = Field(default_factory=lambda: ["*"])
    #: Per-route limits: ``"POST /api/v1/exports"`` (method and path prefix) -> limit.
    routes: dict[str, RouteLimit] = Field(default_factory=dict)


#: Highest rate an override sets (requests per second): far beyond any deployment, and well
#: inside the range a JSON number keeps exactly.
MAX_RATE_PER_S = 1_000_000.0


class RouteLimitOverride(BaseModel):
    """A route limit in an override: JSON's types exactly (``PlanConfig`` also reads config
    and environment strings, so it converts ``"5"`` and ``true``; a request body may not)."""

    model_config = ConfigDict(extra="forbid")
    rate_per_s: StrictFloat = Field(gt=0, le=MAX_RATE_PER_S)
    burst: JsonInt = Field(ge=1)


class PlanOverride(BaseModel):
    """The body of ``PUT /entitlements/tenants/{slug}/override``: any part of a plan, merged
    over the tenant's plan; the same fields as ``PlanConfig``, none required, JSON-typed."""

    model_config = ConfigDict(extra="forbid")
    rate_per_s: Annotated[StrictFloat, Field(gt=0, le=MAX_RATE_PER_S)] | None = None
    burst: Annotated[int, Field(ge=1), JSON_INT] | None = None
    quotas: dict[str, Annotated[int, Field(ge=0), JSON_INT] | None] | None = None
    flags: list[str] | None = None
    modules: list[str] | None = None
    routes: dict[str, RouteLimitOverride] | None = None


DEFAULT_PLANS: dict[str, dict[str, Any]] = {
    "free": {
        "rate_per_s": 10,
        "burst": 100,
        "quotas": {
            "max_users": 10,
            "max_accounts": 100,
            "max_export_rows": 10_000,
            "max_concurrent_exports": 1,
        },
    },
    "pro": {
        "rate_per_s": 100,
        "burst": 300,
        "quotas": {
            "max_users": 250,
            "max_accounts": 100_000,
            "max_export_rows": 1_000_000,
            "max_concurrent_exports": 5,
        },
    },
    "enterprise": {"rate_per_s": 1000, "burst": 3000, "quotas": {}},
}


class PlansSettings(RootModel[dict[str, PlanConfig]]):
    """``[plans]``: the plans by name; the built-in ``free``, ``pro`` and ``enterprise``
    apply unless a plan of that name is configured."""

    root: dict[str, PlanConfig] = Field(
        default_factory=lambda: {k: PlanConfig.model_validate(v) for k, v in DEFAULT_PLANS.items()}
    )


class EntitlementsSettings(BaseModel):
    """``[entitlements]``: resolution of a tenant's plan."""

    model_config = ConfigDict(extra="forbid")

    #: A tenant's resolved plan is reused this long per process; overrides invalidate at once.
    cache_ttl_s: float = Field(default=5.0, ge=0)


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    rate_per_s: float
    burst: int
    quotas: Mapping[str, int | None]
    flags: frozenset[str]
    modules: frozenset[str] | None  # None: every module
    routes: tuple[tuple[str, str, RouteLimit], ...]  # (method, path prefix, limit)
    overridden: bool = False

    def quota(self, name: str) -> int | None:
        return self.quotas.get(name)

    def route_limit(self, method: str, path: str) -> tuple[str, RouteLimit] | None:
        for m, prefix, limit in self.routes:
            if (m == "*" or m == method) and path.startswith(prefix):
                return f"{m} {prefix}", limit
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
            "quotas": dict(self.quotas),
            "flags": sorted(self.flags),
            "modules": sorted(self.modules) if self.modules is not None else ["*"],
            "overridden": self.overridden,
        }


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
        )
    return out


def build(name: str, raw: Mapping[str, Any], overridden: bool = False) -> Plan:
    cfg = PlanConfig.model_validate(raw)
    routes = []
    for spec, limit in cfg.routes.items():
        method, _, prefix = spec.partition(" ")
        routes.append((method.upper(), prefix or "/", limit))
    return Plan(
        name,
        cfg.rate_per_s,
        cfg.burst,
        dict(cfg.quotas),
        frozenset(cfg.flags),
        None if "*" in cfg.modules else frozenset(cfg.modules),
        tuple(routes),
        overridden,
    )


class Plans:
    def __init__(
        self,
        db: Database,
        config: Mapping[str, Any],
        ttl: float = 5.0,
        audit: PlatformAudit | None = None,
        cache: Cache | None = None,
    ) -> None:
        self.db = db
        self.ttl = ttl
        #: The overrides' read path in the platform cache (None: read from the table).
        self.settings_path = cache.path(SETTINGS_PREFIX, SETTINGS_TTL_S) if cache else None
        if self.settings_path is not None:
            self.settings_path.warmer = self._warm
        #: Reads of the override table (tests and benches read it).
        self.loads = 0
        #: Where overrides are audited (None: not audited).
        self.audit = audit
        raw = {**DEFAULT_PLANS, **{k: dict(v) for k, v in config.items()}}
        self.raw: dict[str, dict[str, Any]] = raw
        try:
            self.plans = {name: build(name, spec) for name, spec in raw.items()}
        except ValidationError as exc:
            raise ConfigError(f"plans: {exc}") from None
        self._cache: dict[UUID, tuple[float, Plan]] = {}

    def check_known(self, names: Iterable[str], field: str = "plan") -> None:
        """Raise ValidationFailed naming the first plan that is not configured."""
        for name in names:
            if name not in self.plans:
                msg = f"unknown plan {name!r} (known: {', '.join(sorted(self.plans))})"
                raise ValidationFailed(msg, errors=[{"field": field, "message": msg}])

    def check_request(self, req: ProvisionRequest) -> None:
        """The provisioner's check: a new tenant's plan must be one that exists."""
        self.check_known([req.plan])

    def base(self, name: str) -> Plan:
        plan = self.plans.get(name)
        if plan is None:  # an unknown plan name in the catalog: the most restrictive plan
            return self.plans.get("free") or next(iter(self.plans.values()))
        return plan

    def cached(self, tenant: Tenant) -> Plan:
        """Without I/O: the tenant's resolved plan if cached (overrides included), else the
        plan named in the catalog."""
        hit = self._cache.get(tenant.id)
        if hit is not None and hit[1].name == tenant.plan:
            return hit[1]
        return self.base(tenant.plan)

    async def for_tenant(self, tenant: Tenant) -> Plan:
        hit = self._cache.get(tenant.id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl and hit[1].name == tenant.plan:
            return hit[1]
        over = await self.override(tenant)
        plan = self.base(tenant.plan)
        if over:
            plan = build(plan.name, merge(self.raw.get(plan.name, {}), over), overridden=True)
        self._cache[tenant.id] = (now, plan)
        return plan

    async def _load_override(self, tenant: Tenant) -> Any:
        self.loads += 1
        async with self.db.platform_unit_of_work() as uow:
            return await uow.fetchval(SELECT_OVERRIDE, tenant.id)

    async def override(self, tenant: Tenant) -> Any:
        """The tenant's plan override (None: none), through the cache when there is one."""
        path = self.settings_path
        if path is None:
            return await self._load_override(tenant)
        with tenant_scope(tenant):
            return await path.get(SETTINGS_SUFFIX, lambda: self._load_override(tenant))

    async def _warm(self) -> int:
        await self.override(require_tenant())
        return 1

    async def set_override(self, tenant: Tenant, overrides: Mapping[str, Any]) -> Plan:
        base = self.raw.get(tenant.plan, self.raw.get("free", {}))
        try:
            plan = build(tenant.plan, merge(base, overrides), overridden=bool(overrides))
        except ValidationError as exc:
            raise ValidationFailed(f"invalid plan override: {exc.errors()[0]['msg']}") from None
        opened = (
            self.audit.unit_of_work(tenant)
            if self.audit is not None
            else self.db.platform_unit_of_work()
        )
        async with opened as uow:
            before = await uow.fetchval(SELECT_OVERRIDE, tenant.id)
            await uow.execute(UPSERT_OVERRIDE, tenant.id, dict(overrides))
            record(
                uow,
                "plan.override_set",
                f"tenant:{tenant.slug}",
                before=before,
                after=dict(overrides),
                details={"plan": tenant.plan},
            )
            await uow.notify(CHANNEL, str(tenant.id))
        self._cache.pop(tenant.id, None)
        if self.settings_path is not None:
            with tenant_scope(tenant):
                await self.settings_path.invalidate()
        return plan

    def _on_notify(self, _c: Any, _p: int, _ch: str, payload: object) -> None:
        try:
            tenant_id = UUID(str(payload))
        except ValueError:
            self._cache.clear()
            return
        self._cache.pop(tenant_id, None)
        if self.settings_path is not None:
            self.settings_path.refresh(tenant_id, SETTINGS_SUFFIX)

    async def listen(self) -> None:
        await self.db.listen(CHANNEL, self._on_notify)

    async def close(self) -> None:
        await self.db.unlisten(CHANNEL, self._on_notify)
