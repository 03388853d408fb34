"""The flags module: snapshot at start, LISTEN for changes, admin API (``/api/v1/flags``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from tenantry.capabilities.entitlements.plans import Plans
from tenantry.capabilities.flags.store import NAME_RE, Flag, FlagStore
from tenantry.kernel.auth.actions import PLATFORM_ADMIN
from tenantry.kernel.errors import NotFound
from tenantry.kernel.http.deps import principal, require
from tenantry.kernel.http.types import JsonInt
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.audit import PlatformAudit
from tenantry.kernel.tenancy.context import Principal, require_tenant
from tenantry.kernel.tenancy.model import Tenant

OperatorDep = Annotated[Principal, Depends(require(PLATFORM_ADMIN))]


class FlagBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field(default="", max_length=500)
    default: StrictBool = False
    plans: list[str] = Field(default_factory=list, max_length=50)
    percentage: JsonInt = Field(default=0, ge=0, le=100)


class TargetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool | None  # null: remove the tenant's target


#: The flag-name rule of the store, stated in the document (the store's 422 decides).
FlagName = Annotated[str, Path(json_schema_extra={"pattern": NAME_RE.pattern, "maxLength": 63})]


def build_router(platform: Registrar, store: FlagStore) -> APIRouter:
    router = APIRouter(tags=["flags"])

    async def tenant_of(slug: str) -> Tenant:
        t = await platform.catalog.by_slug(slug)
        if t is None:
            raise NotFound(f"no tenant {slug!r}")
        return t

    @router.get("/mine", summary="The caller's tenant: every flag's value")
    async def mine(_: Annotated[Principal, Depends(principal)]) -> dict[str, bool]:
        return store.all_for(require_tenant())

    @router.get("", summary="Operators: every flag and its rules")
    async def list_flags(_: OperatorDep) -> dict[str, Any]:
        return {"items": [f.as_dict() for f in store.flags.values()]}

    @router.put("/{name}", summary="Operators: create or replace a flag's rules")
    async def put_flag(name: FlagName, body: FlagBody, _: OperatorDep) -> dict[str, Any]:
        flag = Flag(name, body.description, body.default, frozenset(body.plans), body.percentage)
        await store.put(flag)
        return flag.as_dict()

    @router.put("/{name}/tenants/{slug}", summary="Operators: turn a flag on/off for a tenant")
    async def put_target(name: FlagName, slug: str, body: TargetBody, _: OperatorDep) -> Any:
        tenant = await tenant_of(slug)
        await store.set_target(name, tenant, body.enabled)
        ev = store.evaluate(name, tenant)
        return {"flag": name, "tenant": slug, "enabled": ev.value, "reason": ev.reason}

    @router.delete("/{name}", status_code=204)
    async def delete_flag(name: str, _: OperatorDep) -> None:
        await store.delete(name)

    return router


class FlagsModule(Module):
    name: ClassVar[str] = "flags"
    capability: ClassVar[bool] = True
    depends_on: ClassVar[tuple[str, ...]] = ("entitlements",)
    migrations: ClassVar[str | None] = "tenantry.capabilities.flags.migrations"

    def setup(self, registrar: Registrar) -> None:
        plans = registrar.find(Plans)

        def plan_flags(tenant: Tenant) -> frozenset[str]:
            return plans.cached(tenant).flags if plans is not None else frozenset()

        audit = PlatformAudit(
            registrar.db, registrar.catalog, registrar.settings.tenancy.operator_tenant
        )
        store = FlagStore(registrar.db, plan_flags, audit)
        registrar.provide(FlagStore, store)
        registrar.include_router(build_router(registrar, store))

    async def startup(self, platform: Platform) -> None:
        store = platform.use(FlagStore)
        await store.load()
        await store.listen()

    async def shutdown(self, platform: Platform) -> None:
        await platform.use(FlagStore).close()


module = FlagsModule()
