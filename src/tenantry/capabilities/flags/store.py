"""Feature flags: rules in the database, evaluated from an in-process snapshot.

Evaluation for (flag, tenant), first match wins: a per-tenant target (on/off); the tenant's
plan turning it on (``[plans.<name>] flags`` in config, or the flag's ``plans``); a percentage
rollout (a stable hash of flag and tenant id, so a tenant stays in or out as the percentage
grows); the flag's default. An unknown flag is off. The snapshot is reloaded whenever a flag
changes (``NOTIFY tenantry_flags`` from the writer, received by every process) and, as a
safety net, every ``refresh_s`` seconds.

Every change is audited in its transaction (kernel/tenancy/audit): a flag's rules and its
deletion in the operator tenant's log (``flag.rules_set``, ``flag.deleted``), a tenant's
target in that tenant's log (``flag.tenant_set``), each with the values before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tenantry.capabilities.flags.sql import (
    CLEAR_TARGET,
    DELETE_FLAG,
    ENSURE_FLAG,
    LOAD_FLAGS,
    LOAD_TARGETS,
    SELECT_FLAG,
    SELECT_FLAG_TARGETS,
    SELECT_TARGET,
    SET_TARGET,
    UPSERT_FLAG,
)
from tenantry.kernel.db.database import Database
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.errors import NotFound, ValidationFailed
from tenantry.kernel.tenancy.audit import PlatformAudit, record
from tenantry.kernel.tenancy.model import Tenant

_log = logging.getLogger(__name__)
CHANNEL = "tenantry_flags"
NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    description: str = ""
    default_on: bool = False
    plans: frozenset[str] = frozenset()
    percentage: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "default": self.default_on,
            "plans": sorted(self.plans),
            "percentage": self.percentage,
        }


def _flag(r: Any) -> Flag:
    return Flag(
        r["name"], r["description"], r["default_on"], frozenset(r["plans"]), r["percentage"]
    )


def bucket(flag: str, tenant_id: UUID) -> int:
    """0..99, stable per (flag, tenant)."""
    return zlib.crc32(f"{flag}:{tenant_id}".encode()) % 100


@dataclass(frozen=True, slots=True)
class Evaluation:
    value: bool
    reason: str  # "target", "plan", "rollout", "default", "unknown"


class FlagStore:
    def __init__(
        self,
        db: Database,
        plan_flags: Callable[[Tenant], frozenset[str]] | None = None,
        audit: PlatformAudit | None = None,
    ) -> None:
        self.db = db
        self.plan_flags = plan_flags or (lambda _t: frozenset())
        #: Where changes are audited (None: not audited; tests of evaluation only).
        self.audit = audit
        self.flags: dict[str, Flag] = {}
        self.targets: dict[tuple[str, UUID], bool] = {}
        self._reload: asyncio.Task[None] | None = None
        self.loads = 0

    # -- evaluation (no I/O) ----------------------------------------------------------------
    def evaluate(self, name: str, tenant: Tenant) -> Evaluation:
        flag = self.flags.get(name)
        if flag is None:
            return Evaluation(False, "unknown")
        target = self.targets.get((name, tenant.id))
        if target is not None:
            return Evaluation(target, "target")
        if tenant.plan in flag.plans or name in self.plan_flags(tenant):
            return Evaluation(True, "plan")
        if flag.percentage and bucket(name, tenant.id) < flag.percentage:
            return Evaluation(True, "rollout")
        return Evaluation(flag.default_on, "default")

    def enabled(self, name: str, tenant: Tenant) -> bool:
        return self.evaluate(name, tenant).value

    def all_for(self, tenant: Tenant) -> dict[str, bool]:
        return {name: self.enabled(name, tenant) for name in sorted(self.flags)}

    # -- loading ----------------------------------------------------------------------------
    async def load(self) -> None:
        async with self.db.platform_unit_of_work() as uow:
            flags = await uow.fetch(LOAD_FLAGS)
            targets = await uow.fetch(LOAD_TARGETS)
        self.flags = {r["name"]: _flag(r) for r in flags}
        self.targets = {(r["flag"], r["tenant"]): r["enabled"] for r in targets}
        self.loads += 1

    # -- changes (operators) ----------------------------------------------------------------
    def _unit_of_work(
        self, tenant: Tenant | None
    ) -> contextlib.AbstractAsyncContextManager[UnitOfWork]:
        """The change's unit of work, its audit records going to ``tenant``'s log."""
        if self.audit is None:
            return self.db.platform_unit_of_work()
        return self.audit.unit_of_work(tenant)

    async def _operator(self) -> Tenant | None:
        return await self.audit.operator_tenant() if self.audit is not None else None

    async def put(self, flag: Flag) -> None:
        if not NAME_RE.match(flag.name):
            raise ValidationFailed("invalid flag name", errors=[{"field": "name"}])
        if not 0 <= flag.percentage <= 100:
            raise ValidationFailed("percentage is 0..100", errors=[{"field": "percentage"}])
        async with self._unit_of_work(await self._operator()) as uow:
            before = await uow.fetchrow(SELECT_FLAG, flag.name)
            await uow.execute(
                UPSERT_FLAG,
                flag.name,
                flag.description,
                flag.default_on,
                sorted(flag.plans),
                flag.percentage,
            )
            record(
                uow,
                "flag.rules_set",
                f"flag:{flag.name}",
                before=_flag(before).as_dict() if before else None,
                after=flag.as_dict(),
            )
            await uow.notify(CHANNEL, flag.name)
        await self.load()

    async def set_target(self, name: str, tenant: Tenant, enabled: bool | None) -> None:
        """Turn ``name`` on or off for one tenant (creating the flag, off by default, if new);
        ``None`` removes the tenant's target."""
        if not NAME_RE.match(name):
            raise ValidationFailed("invalid flag name", errors=[{"field": "name"}])
        async with self._unit_of_work(tenant) as uow:
            before = await uow.fetchval(SELECT_TARGET, name, tenant.id)
            await uow.execute(ENSURE_FLAG, name)
            if enabled is None:
                await uow.execute(CLEAR_TARGET, name, tenant.id)
            else:
                await uow.execute(SET_TARGET, name, tenant.id, enabled)
            record(
                uow,
                "flag.tenant_set",
                f"flag:{name}",
                before={"enabled": before},
                after={"enabled": enabled},
                details={"tenant": tenant.slug},
            )
            await uow.notify(CHANNEL, name)
        await self.load()

    async def delete(self, name: str) -> None:
        async with self._unit_of_work(await self._operator()) as uow:
            before = await uow.fetchrow(SELECT_FLAG, name)
            targets = await uow.fetch(SELECT_FLAG_TARGETS, name)
            if await uow.fetchval(DELETE_FLAG, name) is None:
                raise NotFound(f"no flag named {name!r}")
            record(
                uow,
                "flag.deleted",
                f"flag:{name}",
                before={
                    **(_flag(before).as_dict() if before else {}),
                    "targets": {str(t["tenant"]): t["enabled"] for t in targets},
                },
            )
            await uow.notify(CHANNEL, name)
        await self.load()

    # -- refresh on change ------------------------------------------------------------------
    def _on_notify(self, *_args: Any) -> None:
        if self._reload is None or self._reload.done():
            self._reload = asyncio.get_running_loop().create_task(self._safe_load())

    async def _safe_load(self) -> None:
        try:
            await self.load()
        except Exception:
            _log.exception("flags: reloading the snapshot failed; keeping the previous one")

    async def listen(self) -> None:
        await self.db.listen(CHANNEL, self._on_notify)

    async def close(self) -> None:
        if self._reload is not None:
            self._reload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload
        await self.db.unlisten(CHANNEL, self._on_notify)
