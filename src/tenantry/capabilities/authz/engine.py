"""The authorization service: per-tenant policy snapshots, a decision cache, audit.

A tenant's rules (identity's roles, its policies, its principals' attributes) are loaded in
one unit of work into a ``PolicySet`` and kept ``snapshot_ttl_s``; decisions are cached
``cache_ttl_s`` per (principal, roles, action, resource). Both are dropped at once, in every
process, when a tenant's roles, policies or attributes change: writers send
``NOTIFY tenantry_authz, '<tenant id>'`` in their transaction, and each process listens.

Every decision is audited (``authz.decision``, outcome allow/deny, the deciding policy):
inside a caller's unit of work in the same transaction, otherwise through the audit buffer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from tenantry.capabilities.audit.buffer import AuditBuffer
from tenantry.capabilities.audit.log import event, record_event
from tenantry.capabilities.authz.policy import Decision, Policy, PolicySet, Resource
from tenantry.capabilities.authz.sql import LOAD_ATTRIBUTES, LOAD_POLICIES, LOAD_ROLES
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.tenancy.context import Principal, current_tenant, tenant_scope
from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)
CHANNEL = "tenantry_authz"

Expand = Callable[[Sequence[str], str | None], list[str]]


def _resource_key(resource: Resource | None) -> Any:
    if resource is None:
        return None
    try:
        attrs = tuple(sorted(resource.attributes.items()))
        hash(attrs)
    except TypeError:
        return _UNCACHEABLE
    return (resource.type, resource.id, attrs)


_UNCACHEABLE = object()


class Authz:
    def __init__(
        self,
        db: Database,
        expand: Expand,
        known_actions: Mapping[str, str],
        platform_policies: Sequence[Policy] = (),
        *,
        cache_ttl_s: float = 5.0,
        snapshot_ttl_s: float = 60.0,
        buffer: AuditBuffer | None = None,
        audit_decisions: bool = True,
        is_operator_tenant: Callable[[str | None], bool] = lambda _slug: False,
    ) -> None:
        self.db = db
        self.expand = expand
        self.known_actions = known_actions
        self.platform_policies = list(platform_policies)
        self.cache_ttl_s = cache_ttl_s
        self.snapshot_ttl_s = snapshot_ttl_s
        self.buffer = buffer
        self.audit_decisions = audit_decisions
        #: The only tenant whose roles may grant platform actions (``Platform.is_operator_tenant``;
        #: by default none).
        self.is_operator_tenant = is_operator_tenant
        self._snapshots: dict[UUID, tuple[float, PolicySet]] = {}
        self._decisions: dict[UUID, dict[Any, tuple[float, Decision]]] = {}
        self.invalidations = 0  # also the generation: a load that raced a change is not kept

    # -- snapshots --------------------------------------------------------------------------
    async def load(self, tenant: Tenant) -> PolicySet:
        # The tenant's own store, by the ambient door (a decision may be asked for a tenant
        # other than the request's: the operator's tools).
        with tenant_scope(tenant):
            async with self.db.unit_of_work() as uow:
                roles = {r["name"]: list(r["actions"]) for r in await uow.fetch(LOAD_ROLES)}
                policies = [
                    Policy(
                        r["name"],
                        r["effect"],
                        tuple(r["actions"]),
                        frozenset(r["roles"]),
                        r["condition"],
                    )
                    for r in await uow.fetch(LOAD_POLICIES)
                ]
                attrs = {r["subject"]: r["attributes"] for r in await uow.fetch(LOAD_ATTRIBUTES)}
        return PolicySet(
            roles,
            [*self.platform_policies, *policies],
            attrs,
            lambda actions: self.expand(actions, tenant.slug),
            self.known_actions,
            operator_tenant=self.is_operator_tenant(tenant.slug),
        )

    async def snapshot(self, tenant: Tenant) -> PolicySet:
        hit = self._snapshots.get(tenant.id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.snapshot_ttl_s:
            return hit[1]
        generation = self.invalidations
        ps = await self.load(tenant)
        if generation == self.invalidations:
            self._snapshots[tenant.id] = (now, ps)
        return ps

    def invalidate(self, tenant_id: UUID | None = None) -> None:
        self.invalidations += 1
        if tenant_id is None:
            self._snapshots.clear()
            self._decisions.clear()
        else:
            self._snapshots.pop(tenant_id, None)
            self._decisions.pop(tenant_id, None)

    # -- deciding ---------------------------------------------------------------------------
    async def check(
        self,
        principal: Principal,
        action: str,
        resource: Resource | None = None,
        *,
        uow: UnitOfWork | None = None,
        tenant: Tenant | None = None,
    ) -> Decision:
        """Decide and audit. ``uow``: the caller's write transaction (audited in it)."""
        tenant = tenant or (uow.tenant if uow is not None else None) or current_tenant()
        if tenant is None or tenant.id != principal.tenant_id:
            decision = Decision(False, "default:wrong-tenant", action)
        else:
            decision = await self._decide(tenant, principal, action, resource)
        if self.audit_decisions and tenant is not None and tenant.id == principal.tenant_id:
            await self._audit(tenant, principal, decision, resource, uow)
        return decision

    async def _decide(
        self, tenant: Tenant, principal: Principal, action: str, resource: Resource | None
    ) -> Decision:
        rkey = _resource_key(resource)
        now = time.monotonic()
        cache = self._decisions.get(tenant.id)
        key = (principal.subject, principal.roles, action, rkey)
        if cache is not None and rkey is not _UNCACHEABLE:
            hit = cache.get(key)
            if hit is not None and now < hit[0]:
                return hit[1]
        generation = self.invalidations
        ps = await self.snapshot(tenant)
        decision = ps.decide(principal.subject, principal.kind, principal.roles, action, resource)
        if rkey is not _UNCACHEABLE and generation == self.invalidations:
            if cache is None:
                cache = self._decisions.setdefault(tenant.id, {})
            if len(cache) > 100_000:
                cache.clear()
            cache[key] = (now + self.cache_ttl_s, decision)
        return decision

    async def _audit(
        self,
        tenant: Tenant,
        principal: Principal,
        decision: Decision,
        resource: Resource | None,
        uow: UnitOfWork | None,
    ) -> None:
        e = event(
            "authz.decision",
            resource.label if resource else None,
            outcome="allow" if decision.allowed else "deny",
            details={"action": decision.action, "policy": decision.policy},
            principal=principal,
        )
        if uow is not None:
            await record_event(uow, e)
        elif self.buffer is not None:
            self.buffer.add(tenant, e)

    async def authorize(
        self, principal: Principal, action: str, resource: Any = None
    ) -> tuple[bool, str]:
        """The kernel's ``require()`` hook."""
        res = resource if isinstance(resource, Resource) or resource is None else None
        d = await self.check(principal, action, res)
        return d.allowed, d.policy

    # -- invalidation across processes ------------------------------------------------------
    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            self.invalidate(UUID(str(payload)))
        except ValueError:
            self.invalidate()

    async def listen(self) -> None:
        await self.db.listen(CHANNEL, self._on_notify)

    async def close(self) -> None:
        await self.db.unlisten(CHANNEL, self._on_notify)


async def notify_change(uow: UnitOfWork) -> None:
    """Call in the transaction that changes a tenant's roles, policies or attributes."""
    await uow.notify(CHANNEL, str(uow.tenant_id))
