"""The ledger's part of tenant onboarding: ``platform.SeedChartOfAccounts.v1`` creates the new
tenant's chart of accounts, ``platform.RemoveChartOfAccounts.v1`` (the saga's compensation)
removes it. Both run in the unit of work the dispatcher gives them: the new tenant's, so RLS
applies to every row they touch.

Seeding is idempotent (``ON CONFLICT (tenant_id, code) DO NOTHING``: a resumed saga or a
redelivery creates nothing twice) and marks each account ``metadata.seeded = <template>``;
the removal deletes only marked accounts without entries, so it tolerates a seed that ran
partly or not at all and never touches an account someone used.
"""

from __future__ import annotations

import uuid
from typing import Any

from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry.kernel.tenancy.contracts import RemoveChartOfAccounts, SeedChartOfAccounts
from tenantry.modules.ledger.application.onboarding import SEEDED_KEY, chart
from tenantry.modules.ledger.domain.model import check_currency

SEED_ACCOUNTS = """
INSERT INTO ledger_accounts (tenant_id, id, code, name, type, currency, allow_negative, metadata)
SELECT $1, a.id, a.code, a.name, a.type, $2, a.allow_negative, $3::jsonb
FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::boolean[])
     AS a (id, code, name, type, allow_negative)
ON CONFLICT (tenant_id, code) DO NOTHING
RETURNING code
"""

REMOVE_SEEDED = """
DELETE FROM ledger_accounts
WHERE metadata->>'seeded' = $1 AND entry_count = 0
RETURNING code
"""


async def seed_chart(uow: UnitOfWork, cmd: SeedChartOfAccounts, ctx: MessageContext) -> Any:
    """Create the template's accounts that do not exist yet; reply with what was created."""
    accounts = chart(cmd.template)
    check_currency(cmd.currency)
    if not accounts:
        return {"template": cmd.template, "created": []}
    rows = await uow.fetch(
        SEED_ACCOUNTS,
        uow.tenant_id,
        cmd.currency,
        {SEEDED_KEY: cmd.template},
        [uuid.uuid4() for _ in accounts],
        [a.code for a in accounts],
        [a.name for a in accounts],
        [a.type.value for a in accounts],
        [a.allow_negative for a in accounts],
    )
    return {"template": cmd.template, "created": sorted(r["code"] for r in rows)}


async def remove_chart(uow: UnitOfWork, cmd: RemoveChartOfAccounts, ctx: MessageContext) -> Any:
    rows = await uow.fetch(REMOVE_SEEDED, cmd.template)
    return {"template": cmd.template, "removed": sorted(r["code"] for r in rows)}
