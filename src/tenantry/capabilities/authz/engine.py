"""The authorization service: per-tenant policy snapshots, a decision cache, audit.

A tenant's rules (identity's roles, its policies, its principals' attributes) are loaded in
one unit of work into a ``PolicySet`` and kept ``snapshot_ttl_s``; decisions are cached
``cache_ttl_s`` per (principal, roles, action, resource). Both are dropped at once, in every
process, when a tenant's roles, policies or attributes change: writers send
``NOTIFY tenantry_authz, '<tenant id>'`` in their transaction, and each process listens: on
the main database, and on the database of every database-mode tenant it has loaded (the
NOTIFY is sent in that tenant's own database; before, a change there reached no process, the
writer's included, until the snapshot's TTL ran out).

The permission lookup (a tenant's roles, policies and attributes: three queries) reads
through the platform cache when one is given (read path ``authz:permissions``, TTL
``permission_ttl_s``, 60 s): a process whose snapshot expired, or a new process, takes the
rules from the cache instead of the tenant's store. A change's NOTIFY makes each process's
next lookup of that tenant load from the store and overwrite the cached entry
(``ReadPath.refresh``, which also deletes the entry from the shared cache at once, so a
process started later never reads the old rules), so every process sees a committed change
once its NOTIFY arrived, as before. Snapshot hits count as ``l1_hit`` of
``authz:permissions`` in the cache statistics: that prefix's hit rate is the
permission-cache hit rate (SLO ``authz-permissions``).
Decision latency is the histogram ``tenantry_authz_decision_duration_seconds``.

Every decision is audited (``authz.decision``, outcome allow/deny, the deciding policy):
inside a caller's unit of work in the same transaction, otherwise through the audit buffer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from tenantry.capabilities.audit.buffer import AuditBuffer
from tenantry.capabilities.audit.log import event, record_event
from tenantry.capabilities.authz.policy import Decision, Policy, PolicySet, Resource
from tenantry.capabilities.authz.sql import LOAD_ATTRIBUTES, LOAD_POLICIES, LOAD_ROLES
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.observability.metrics import AUTHZ_DECISION_DURATION
from tenantry.kernel.tenancy.context import Principal, current_tenant, tenant_scope
from tenantry.kernel.tenancy.model import Tenant

if TYPE_CHECKING:
    from tenantry.capabilities.cache import Cache
    from tenantry.capabilities.cache.cache import ReadPath

_log = logging.getLogger(__name__)
CHANNEL = "tenantry_authz"
#: The permission lookup's read path (``authz:permissions:rules``, one key per tenant).
PERMISSIONS_PREFIX = "authz:permissions"
PERMISSIONS_SUFFIX = "rules"
PERMISSIONS_KEY = f"{PERMISSIONS_PREFIX}:{PERMISSIONS_SUFFIX}"
_DECIDED_FROM_CACHE = ("decision_cache",)
_EVALUATED = ("evaluated",)

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
        cache: Cache | None = None,
        permission_ttl_s: float = 60.0,
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
        #: The shared permission lookup (None: every snapshot loads from the tenant's store).
        self.permissions: ReadPath | None = None
        if cache is not None and permission_ttl_s > 0:
            self.permissions = cache.path(PERMISSIONS_PREFIX, permission_ttl_s)
            self.permissions.warmer = self._warm
        #: Loads from the tenant's store (tests and benches read it).
        self.store_loads = 0
        #: Bumped by a change of unknown tenant: every tenant's next lookup loads from the store.
        self._epoch = 0
        self._tenant_epoch: dict[UUID, int] = {}
        #: (server, database) of the database-mode tenants whose NOTIFYs this process follows.
        self._stores: set[tuple[str, str]] = set()

    # -- snapshots --------------------------------------------------------------------------
    async def _load_rules(self) -> dict[str, Any]:
        """The ambient tenant's roles, policies and attributes from its store (JSON-able)."""
        self.store_loads += 1
        async with self.db.unit_of_work() as uow:
            roles = {r["name"]: list(r["actions"]) for r in await uow.fetch(LOAD_ROLES)}
            policies = [
                [r["name"], r["effect"], list(r["actions"]), list(r["roles"]), r["condition"]]
                for r in await uow.fetch(LOAD_POLICIES)
            ]
            attrs = {r["subject"]: r["attributes"] for r in await uow.fetch(LOAD_ATTRIBUTES)}
        return {"roles": roles, "policies": policies, "attributes": attrs}

    async def _warm(self) -> int:
        tenant = current_tenant()
        if tenant is None or self.permissions is None:
            return 0
        await self.permissions.get(PERMISSIONS_SUFFIX, self._load_rules)
        return 1

    async def load(self, tenant: Tenant) -> PolicySet:
        # The tenant's own store, by the ambient door (a decision may be asked for a tenant
        # other than the request's: the operator's tools).
        with tenant_scope(tenant):
            path = self.permissions
            if path is None:
                rules = await self._load_rules()
            else:
                if self._tenant_epoch.get(tenant.id, 0) < self._epoch:
                    path.refresh(tenant.id, PERMISSIONS_SUFFIX)
                self._tenant_epoch[tenant.id] = self._epoch
                rules = await path.get(PERMISSIONS_SUFFIX, self._load_rules)
        roles = rules["roles"]
        policies = [
            Policy(name, effect, tuple(actions), frozenset(pr), condition)
            for name, effect, actions, pr, condition in rules["policies"]
        ]
        attrs = rules["attributes"]
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
            if self.permissions is not None:
                self.permissions.cache.count_l1_hit(PERMISSIONS_KEY)
            return hit[1]
        if tenant.database and (tenant.server, tenant.database) not in self._stores:
            # Subscribed before the load: a change committed after it is not missed.
            await self.db.listen(
                CHANNEL, self._on_notify, server=tenant.server, database=tenant.database
            )
            self._stores.add((tenant.server, tenant.database))
        generation = self.invalidations
        ps = await self.load(tenant)
        if generation == self.invalidations:
            self._snapshots[tenant.id] = (now, ps)
        elif self.permissions is not None:
            # a change raced this load: what it stored may be old; the next one re-reads
            self.permissions.refresh(tenant.id, PERMISSIONS_SUFFIX)
        return ps

    def invalidate(self, tenant_id: UUID | None = None) -> None:
        self.invalidations += 1
        if tenant_id is None:
            self._snapshots.clear()
            self._decisions.clear()
            self._epoch += 1
        else:
            self._snapshots.pop(tenant_id, None)
            self._decisions.pop(tenant_id, None)
            if self.permissions is not None:
                self.permissions.refresh(tenant_id, PERMISSIONS_SUFFIX)

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
        started = time.perf_counter()
        rkey = _resource_key(resource)
        now = time.monotonic()
        cache = self._decisions.get(tenant.id)
        key = (principal.subject, principal.roles, action, rkey)
        if cache is not None and rkey is not _UNCACHEABLE:
            hit = cache.get(key)
            if hit is not None and now < hit[0]:
                AUTHZ_DECISION_DURATION.observe(_DECIDED_FROM_CACHE, time.perf_counter() - started)
                return hit[1]
        generation = self.invalidations
        ps = await self.snapshot(tenant)
        decision = ps.decide(principal.subject, principal.kind, principal.roles, action, resource)
        AUTHZ_DECISION_DURATION.observe(_EVALUATED, time.perf_counter() - started)
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
        stores, self._stores = self._stores, set()
        for server, database in stores:
            await self.db.unlisten(CHANNEL, self._on_notify, server=server, database=database)


async def notify_change(uow: UnitOfWork) -> None:
    """Call in the transaction that changes a tenant's roles, policies or attributes."""
    await uow.notify(CHANNEL, str(uow.tenant_id))
