"""Platform routes (``/api/v1/platform``): tenant onboarding for platform admins (members of
the operator tenant holding ``platform:admin``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, create_model

from tenantry.kernel.auth.actions import PLATFORM_ADMIN
from tenantry.kernel.http.deps import require
from tenantry.kernel.http.openapi import NOT_BLANK, Documenter, documents, problems_extra
from tenantry.kernel.tenancy.context import Principal
from tenantry.kernel.tenancy.model import SLUG_RE, IsolationMode
from tenantry.kernel.tenancy.onboarding import OnboardingOption, shown_outputs
from tenantry.kernel.tenancy.provisioning import ProvisionRequest

if TYPE_CHECKING:
    from tenantry.kernel.platform import Platform


class TenantFields(BaseModel):
    """The kernel's fields of ``POST /platform/tenants``; ``new_tenant_model`` adds one per
    option the modules declare (``Module.onboarding_options``)."""

    model_config = ConfigDict(extra="forbid")
    slug: str = Field(max_length=40)
    name: str = Field(max_length=200)
    isolation: IsolationMode = IsolationMode.SHARED
    plan: str | None = Field(default=None, max_length=50)
    server: str = Field(default="default", max_length=63)


def new_tenant_model(options: Sequence[OnboardingOption]) -> type[TenantFields]:
    fields: dict[str, Any] = {
        o.name: (str | None, Field(default=None, max_length=o.max_length)) for o in options
    }
    return create_model("NewTenant", __base__=TenantFields, **fields)


def _tenant_body(platform: Platform) -> Documenter:
    """The body of ``POST /platform/tenants`` as it is checked: the slug rule, a name that is
    not blank, the configured servers, and what the modules' checks decide
    (``Platform.check_provision_request(check, schema)``: plans) and the options modules
    declare (``Module.onboarding_options``: chart templates, the first admin)."""

    def rewrite(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
        target = schemas.get("NewTenant")
        if target is None:
            return
        props = target.setdefault("properties", {})
        props["slug"] = {"type": "string", "pattern": SLUG_RE.pattern, "maxLength": 40}
        props["name"] = {"type": "string", "maxLength": 200, "pattern": NOT_BLANK}
        props["server"] = {"enum": sorted(platform.db.server_names), "default": "default"}
        for key, schema in platform.provision_schemas.items():
            props[key] = schema

    return rewrite


def build_router(platform: Platform) -> APIRouter:
    router = APIRouter(tags=["platform"])
    names = list(platform.onboarding.options)
    body_model = new_tenant_model(list(platform.onboarding.options.values()))

    async def create_tenant(
        body: TenantFields, _: Annotated[Principal, Depends(require(PLATFORM_ADMIN))]
    ) -> dict[str, Any]:
        options = {k: v for k in names if (v := getattr(body, k, None))}
        res = await platform.provisioner.create(
            ProvisionRequest(
                body.slug,
                body.name,
                body.isolation,
                body.plan or platform.settings.tenancy.default_plan,
                body.server,
                options,
            )
        )
        t = res.tenant
        return {
            "id": str(t.id),
            "slug": t.slug,
            "name": t.name,
            "isolation": t.isolation.value,
            "status": t.status.value,
            "plan": t.plan,
            **shown_outputs(res.outputs, names),
        }

    # The body's model is built from the options: set as the annotation FastAPI reads.
    create_tenant.__annotations__["body"] = body_model
    router.post(
        "/tenants",
        status_code=201,
        summary="Onboard a tenant (the onboarding saga)",
        openapi_extra=problems_extra(409),
    )(documents(_tenant_body(platform))(create_tenant))
    return router
