"""The authz module: migrations, the kernel hook, the policy API (``/api/v1/authz``).

Every change through the API is audited in its transaction (``uow.audit``, written at commit
and chained in batches: writers of a tenant do not queue on its chain head):
``authz.policy.put``, ``authz.policy.delete``, ``authz.attributes.put``, before and after.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from tenantry.capabilities import authz
from tenantry.capabilities.audit.buffer import AuditBuffer
from tenantry.capabilities.authz.conditions import ConditionError, condition_schemas, validate
from tenantry.capabilities.authz.engine import Authz, notify_change
from tenantry.capabilities.authz.policy import Policy, Resource
from tenantry.capabilities.authz.sql import (
    DELETE_POLICY,
    LIST_POLICIES,
    SELECT_ATTRIBUTES,
    SELECT_POLICY,
    UPSERT_ATTRIBUTES,
    UPSERT_POLICY,
)
from tenantry.capabilities.cache import Cache
from tenantry.kernel.auth.actions import (
    refuse_platform_grants,
    refuse_platform_names,
    tenant_grants,
)
from tenantry.kernel.db.database import Database
from tenantry.kernel.errors import NotFound, ValidationFailed
from tenantry.kernel.http.deps import principal, require
from tenantry.kernel.http.openapi import Documenter, documents
from tenantry.kernel.modules import Module
from tenantry.kernel.platform import Platform
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.context import Principal

ADMIN = "authz:admin"
NAME_RE = r"^[a-z][a-z0-9_.:-]{0,62}$"

AdminDep = Annotated[Principal, Depends(require(ADMIN))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyBody(Strict):
    effect: Literal["allow", "deny"]
    actions: list[str] = Field(min_length=1, max_length=100)
    roles: list[str] = Field(default_factory=list, max_length=100)
    condition: dict[str, Any] | None = None
    description: str = Field(default="", max_length=500)


class CheckBody(Strict):
    action: str = Field(max_length=200)
    resource_type: str | None = Field(default=None, max_length=100)
    resource_id: str | None = Field(default=None, max_length=200)
    attributes: dict[str, Any] = Field(default_factory=dict)


class PolicyConfig(BaseModel):
    """One platform-wide policy of ``[authz] default_policies``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Policy name (unique).")
    effect: Literal["allow", "deny"] = Field(description="allow or deny.")
    actions: list[str] = Field(min_length=1, description="Actions (``ledger:*`` patterns).")
    roles: list[str] = Field(default_factory=list, description="Roles it applies to; [] = all.")
    condition: dict[str, Any] | None = Field(
        default=None, description="Condition document (docs/modules.md, authz)."
    )


class AuthzSettings(BaseModel):
    """``[authz]``: the decision caches and the platform-wide policies."""

    model_config = ConfigDict(extra="forbid")

    #: Decision cache per process (not the platform cache: measured slower than deciding).
    cache_ttl_s: float = Field(default=5.0, ge=0)
    #: A tenant's roles, policies and attributes kept in memory this long.
    snapshot_ttl_s: float = Field(default=60.0, ge=0)
    #: The same rules kept in the platform cache this long (read path ``authz:permissions``;
    #: 0: not cached there).
    permission_ttl_s: float = Field(default=60.0, ge=0)
    #: Record every decision in the audit log.
    audit_decisions: bool = True
    #: Platform-wide policies, evaluated with every tenant's own.
    default_policies: list[PolicyConfig] = Field(default_factory=list)


def policy_from_config(raw: PolicyConfig | dict[str, Any]) -> Policy:
    cfg = raw if isinstance(raw, PolicyConfig) else PolicyConfig.model_validate(raw)
    if cfg.condition is not None:
        validate(cfg.condition)
    return Policy(
        cfg.name,
        cfg.effect,
        tuple(cfg.actions),
        frozenset(cfg.roles),
        cfg.condition,
        source="platform",
    )


def _row(r: Any) -> dict[str, Any]:
    return {
        "name": r["name"],
        "effect": r["effect"],
        "actions": list(r["actions"]),
        "roles": list(r["roles"]),
        "condition": r["condition"],
        "description": r["description"],
        "updated_at": r["updated_at"].isoformat(),
    }


CONDITION_REF = "#/components/schemas/AuthzCondition"


def _policy_schema(platform: Registrar) -> Documenter:
    """A policy body as it is checked: the actions an ``allow`` may grant in a tenant
    (``tenant_grants``; a ``deny`` may name any declared action or pattern) and the
    condition language (``conditions.condition_schemas``)."""

    def rewrite(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
        schemas.update(condition_schemas())
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            return
        known = sorted(platform.permissions)
        spaces = sorted({a.split(":", 1)[0] + ":*" for a in known if ":" in a})
        common = {
            "roles": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
            "condition": {
                "anyOf": [{"$ref": "#/components/schemas/AuthzCondition"}, {"type": "null"}]
            },
            "description": {"type": "string", "maxLength": 500},
        }

        def branch(effect: str, actions: list[str]) -> dict[str, Any]:
            return {
                "type": "object",
                "title": f"{effect} policy",
                "properties": {
                    "effect": {"const": effect},
                    "actions": {
                        "type": "array",
                        "items": {"enum": actions},
                        "minItems": 1,
                        "maxItems": 100,
                    },
                    **common,
                },
                "required": ["effect", "actions"],
                "additionalProperties": False,
            }

        body["schema"] = {
            "oneOf": [
                branch("allow", tenant_grants(known)),
                branch("deny", sorted({"*", *known, *spaces})),
            ]
        }

    return rewrite


def build_router(platform: Registrar, engine: Authz) -> APIRouter:
    router = APIRouter(tags=["authz"])
    db: Database = platform.db

    def _check_actions(actions: list[str]) -> None:
        bad = [
            a for a in actions if not (a == "*" or a.endswith(":*") or a in platform.permissions)
        ]
        if bad:
            raise ValidationFailed(
                f"unknown actions: {', '.join(bad)}",
                errors=[{"field": "actions", "message": f"unknown action {a!r}"} for a in bad],
            )

    @router.get("/policies")
    async def list_policies(_: AdminDep) -> dict[str, Any]:
        async with db.unit_of_work() as uow:
            rows = await uow.fetch(LIST_POLICIES)
        defaults = [
            {
                "name": p.name,
                "effect": p.effect,
                "actions": list(p.actions),
                "roles": sorted(p.roles),
                "condition": p.condition,
                "source": "platform",
            }
            for p in engine.platform_policies
        ]
        return {"items": [_row(r) for r in rows], "platform_defaults": defaults}

    @router.get("/policies/{name}")
    async def get_policy(name: str, _: AdminDep) -> dict[str, Any]:
        async with db.unit_of_work() as uow:
            r = await uow.fetchrow(SELECT_POLICY, name)
        if r is None:
            raise NotFound(f"no policy named {name!r}")
        return _row(r)

    @router.put("/policies/{name}")
    @documents(_policy_schema(platform))
    async def put_policy(
        name: Annotated[str, Path(json_schema_extra={"pattern": NAME_RE, "maxLength": 63})],
        body: PolicyBody,
        p: AdminDep,
    ) -> dict[str, Any]:
        if not re.match(NAME_RE, name):
            raise ValidationFailed("invalid policy name", errors=[{"field": "name"}])
        if body.effect == "allow":  # a deny cannot grant: it may name anything
            refuse_platform_grants(body.actions)
        _check_actions(body.actions)
        if body.condition is not None:
            try:
                validate(body.condition)
            except ConditionError as exc:
                raise ValidationFailed(
                    str(exc), errors=[{"field": exc.path, "message": str(exc)}]
                ) from None
        async with db.unit_of_work() as uow:
            before = await uow.fetchrow(SELECT_POLICY, name)
            r = await uow.fetchrow(
                UPSERT_POLICY,
                name,
                body.effect,
                body.actions,
                body.roles,
                body.condition,
                body.description,
            )
            assert r is not None
            after = body.model_dump()
            uow.audit(
                "authz.policy.put",
                f"policy:{name}",
                before=_row(before) if before else None,
                after=after,
            )
            await notify_change(uow)
        return {"name": name, **after, "created": r["created"]}

    @router.delete("/policies/{name}", status_code=204)
    async def delete_policy(name: str, _: AdminDep) -> None:
        async with db.unit_of_work() as uow:
            before = await uow.fetchrow(SELECT_POLICY, name)
            if before is None:
                raise NotFound(f"no policy named {name!r}")
            await uow.execute(DELETE_POLICY, name)
            uow.audit("authz.policy.delete", f"policy:{name}", before=_row(before))
            await notify_change(uow)

    @router.get("/subjects/{subject}/attributes")
    async def get_attributes(subject: str, _: AdminDep) -> dict[str, Any]:
        async with db.unit_of_work() as uow:
            attrs = await uow.fetchval(SELECT_ATTRIBUTES, subject)
        return {"subject": subject, "attributes": attrs or {}}

    @router.put("/subjects/{subject}/attributes")
    async def put_attributes(
        subject: Annotated[str, Path(max_length=200)],
        body: Annotated[dict[str, Any], Body(json_schema_extra={"maxProperties": 100})],
        _: AdminDep,
    ) -> dict[str, Any]:
        if len(subject) > 200 or len(body) > 100:
            raise ValidationFailed("subject or attributes too large")
        refuse_platform_names(body)
        async with db.unit_of_work() as uow:
            before = await uow.fetchval(SELECT_ATTRIBUTES, subject)
            await uow.execute(UPSERT_ATTRIBUTES, subject, body)
            uow.audit("authz.attributes.put", f"subject:{subject}", before=before, after=body)
            await notify_change(uow)
        return {"subject": subject, "attributes": body}

    @router.post("/check", summary="Explain: would the caller be allowed this action?")
    async def check(body: CheckBody, p: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
        resource = (
            Resource(body.resource_type, body.resource_id, body.attributes)
            if body.resource_type
            else None
        )
        d = await engine.check(p, body.action, resource)
        return {"allowed": d.allowed, "policy": d.policy, "action": d.action}

    return router


class AuthzModule(Module):
    name: ClassVar[str] = "authz"
    capability: ClassVar[bool] = True
    depends_on: ClassVar[tuple[str, ...]] = ("audit", "cache", "identity")
    migrations: ClassVar[str | None] = "tenantry.capabilities.authz.migrations"
    permissions: ClassVar[dict[str, str]] = {
        ADMIN: "manage the tenant's authorization policies and principal attributes"
    }

    settings_model = AuthzSettings

    def setup(self, registrar: Registrar) -> None:
        cfg = registrar.settings.section(self.name, AuthzSettings)
        try:
            defaults = [policy_from_config(p) for p in cfg.default_policies]
        except ConditionError as exc:
            from tenantry.kernel.errors import ConfigError

            raise ConfigError(f"authz.default_policies: {exc}") from None
        engine = Authz(
            registrar.db,
            registrar.expand_actions,
            registrar.permissions,
            defaults,
            cache_ttl_s=cfg.cache_ttl_s,
            snapshot_ttl_s=cfg.snapshot_ttl_s,
            buffer=registrar.find(AuditBuffer),
            audit_decisions=cfg.audit_decisions,
            is_operator_tenant=registrar.is_operator_tenant,
            cache=registrar.find(Cache),
            permission_ttl_s=cfg.permission_ttl_s,
        )
        registrar.provide(Authz, engine)
        registrar.set_authorizer(engine)
        registrar.include_router(build_router(registrar, engine))

    async def startup(self, platform: Platform) -> None:
        engine = platform.use(Authz)
        await engine.listen()
        authz._active.append(engine)

    async def shutdown(self, platform: Platform) -> None:
        engine = platform.use(Authz)
        if engine in authz._active:
            authz._active.remove(engine)
        await engine.close()


module = AuthzModule()
