"""The entitlements module: plans from config, overrides, module gating, plan API."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Body, Depends
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantry.capabilities.cache import Cache
from tenantry.capabilities.entitlements import NotEntitled
from tenantry.capabilities.entitlements.plans import (
    EntitlementsSettings,
    PlanOverride,
    Plans,
    PlansSettings,
)
from tenantry.kernel.auth.actions import PLATFORM_ADMIN
from tenantry.kernel.errors import NotFound, ValidationFailed
from tenantry.kernel.http.deps import principal, require
from tenantry.kernel.http.openapi import documents
from tenantry.kernel.http.problems import problem_response
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import MIDDLEWARE_ENTITLEMENTS, Registrar
from tenantry.kernel.tenancy.audit import PlatformAudit
from tenantry.kernel.tenancy.context import Principal, current_tenant, require_tenant

#: Modules every plan includes (turning them off would lock a tenant out).
ALWAYS = frozenset({"identity", "audit", "authz", "entitlements", "flags"})


class ModuleGate:
    """403 ``not-entitled`` for ``/api/v1/<module>/...`` when the tenant's plan lacks it."""

    def __init__(self, app: ASGIApp, plans: Plans) -> None:
        self.app = app
        self.plans = plans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant = current_tenant() if scope["type"] == "http" else None
        path: str = scope.get("path", "")
        if tenant is not None and path.startswith("/api/v1/"):
            module = path[8:].split("/", 1)[0]
            if module not in ALWAYS:
                plan = await self.plans.for_tenant(tenant)
                if plan.modules is not None and module not in plan.modules:
                    exc = NotEntitled(
                        f"the {plan.name} plan does not include the {module} module",
                        limit=f"module:{module}",
                        plan=plan.name,
                    )
                    rid = scope.get("state", {}).get("request_id")
                    await problem_response(
                        exc.status,
                        exc.type_slug,
                        exc.title,
                        exc.detail,
                        request_id=rid,
                        extra=exc.extra,
                    )(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _override_schema(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The override is any part of a plan (merged over the tenant's plan): ``PlanOverride``."""
    schema = PlanOverride.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        body["schema"] = schema


def build_router(platform: Registrar, plans: Plans) -> APIRouter:
    router = APIRouter(tags=["entitlements"])

    @router.get("/plan", summary="The caller's tenant plan: limits, quotas, flags, modules")
    async def my_plan(_: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
        return (await plans.for_tenant(require_tenant())).as_dict()

    @router.get("/plans", summary="Every plan defined in config")
    async def all_plans(_: Annotated[Principal, Depends(require(PLATFORM_ADMIN))]) -> Any:
        return {"items": [p.as_dict() for p in plans.plans.values()]}

    @router.put("/tenants/{slug}/override", summary="Operators: override a tenant's plan")
    @documents(_override_schema)
    async def override(
        slug: str,
        body: Annotated[dict[str, Any], Body()],
        _: Annotated[Principal, Depends(require(PLATFORM_ADMIN))],
    ) -> dict[str, Any]:
        tenant = await platform.catalog.by_slug(slug)
        if tenant is None:
            raise NotFound(f"no tenant {slug!r}")
        try:
            override = PlanOverride.model_validate(body)
        except ValidationError as exc:
            raise ValidationFailed(
                "invalid plan override",
                errors=[
                    {"field": ".".join(str(x) for x in e["loc"]), "message": e["msg"]}
                    for e in exc.errors()
                ],
            ) from None
        # null for a whole field: keep the plan's (a null quota inside means unlimited)
        changes = {
            k: v for k, v in override.model_dump(exclude_unset=True).items() if v is not None
        }
        return (await plans.set_override(tenant, changes)).as_dict()

    return router


class EntitlementsModule(Module):
    name: ClassVar[str] = "entitlements"
    capability: ClassVar[bool] = True
    depends_on: ClassVar[tuple[str, ...]] = ("cache",)
    migrations: ClassVar[str | None] = "tenantry.capabilities.entitlements.migrations"
    settings_model = EntitlementsSettings
    settings_sections = {"plans": PlansSettings}

    def setup(self, registrar: Registrar) -> None:
        configured = registrar.settings.section("plans", PlansSettings).root
        cfg = {name: plan.model_dump() for name, plan in configured.items()}
        ttl = registrar.settings.section(self.name, EntitlementsSettings).cache_ttl_s
        audit = PlatformAudit(
            registrar.db, registrar.catalog, registrar.settings.tenancy.operator_tenant
        )
        plans = Plans(registrar.db, cfg, ttl, audit, registrar.find(Cache))
        registrar.provide(Plans, plans)
        registrar.check_provision_request(
            plans.check_request, {"plan": {"enum": [*sorted(plans.plans), None]}}
        )
        registrar.add_middleware(ModuleGate, order=MIDDLEWARE_ENTITLEMENTS, plans=plans)
        registrar.include_router(build_router(registrar, plans))

    async def startup(self, platform: Platform) -> None:
        await platform.use(Plans).listen()

    async def shutdown(self, platform: Platform) -> None:
        await platform.use(Plans).close()


module = EntitlementsModule()
