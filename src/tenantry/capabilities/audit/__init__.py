"""Audit log: append-only, per tenant, hash-chained, partitioned by month.

    from tenantry.capabilities import audit
    await audit.record(uow, action="ledger.account.update", resource=f"account:{id}",
                       before=old, after=new)

The record is written in ``uow``'s transaction (it commits or rolls back with the change),
stamped with who (principal, client, ip), when, and the request and trace ids.
"""

from __future__ import annotations

from typing import Any

from tenantry.capabilities.audit.log import AuditLog, Event, event, record_event
from tenantry.kernel.db.uow import UnitOfWork

__all__ = ["AuditLog", "Event", "event", "record"]


async def record(
    uow: UnitOfWork,
    *,
    action: str,
    resource: str | None = None,
    before: Any = None,
    after: Any = None,
    outcome: str = "success",
    details: Any = None,
) -> int:
    """Append one audit record in ``uow``'s transaction; return its sequence number."""
    e = event(action, resource, outcome=outcome, before=before, after=after, details=details)
    return await record_event(uow, e)
