"""Platform routes (``/api/v1/platform``): tenant onboarding for platform admins (members of
the operator tenant holding ``platform:admin``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tenantry.kernel.http.deps import require
from tenantry.kernel.http.openapi import NOT_BLANK, Documenter, documents, problems_extra
from tenantry.kernel.tenancy.context import Principal
from tenantry.kernel.tenancy.model import SLUG_RE, IsolationMode
from tenantry.kernel.tenancy.provisioning import ProvisionRequest

if TYPE_CHECKING:
    from tenantry.kernel.platform import Platform


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(max_length=40)
    name: str = Field(max_length=200)
    isolation: IsolationMode = IsolationMode.SHARED
    plan: str | None = Field(default=None, max_length=50)
    server: str = Field(default="default", max_length=63)
    admin_email: str | None = Field(default=None, max_length=320)
    admin_password: str | None = Field(default=None, max_length=1024)
    #: The ledger's chart-of-accounts template ("default"; "none": an empty ledger).
    chart_of_accounts: str | None = Field(default=None, max_length=40)


#: Same value as ``kernel.platform.PLATFORM_ADMIN`` (module-level: FastAPI resolves the
#: route's annotations from module globals).
PLATFORM_ADMIN = "platform:admin"


def _tenant_body(platform: Platform) -> Documenter:
    """The body of ``POST /platform/tenants`` as it is checked: the slug rule, a name that is
    not blank, the configured servers, and what the modules' checks decide
    (``Platform.check_provision_request(check, schema)``: plans, chart templates, admin)."""

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

    @router.post(
        "/tenants",
        status_code=201,
        summary="Onboard a tenant (the onboarding saga)",
        openapi_extra=problems_extra(409),
    )
    @documents(_tenant_body(platform))
    async def create_tenant(
        body: NewTenant, _: Annotated[Principal, Depends(require(PLATFORM_ADMIN))]
    ) -> dict[str, Any]:
        options = {
            k: v
            for k, v in (
                ("admin_email", body.admin_email),
                ("admin_password", body.admin_password),
                ("chart_of_accounts", body.chart_of_accounts),
            )
            if v
        }
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
            **{k: v for k, v in res.outputs.items() if k in ("admin_email", "admin_password")},
        }

    return router
