"""The ledger's part of tenant onboarding: the saga step ``chart_of_accounts`` creates the new
tenant's chart of accounts, its compensation removes it. Both run in a unit of work of the new
tenant (``OnboardingRun.unit_of_work``), so RLS applies to every row they touch.

Seeding is idempotent (``ON CONFLICT (tenant_id, code) DO NOTHING``: a resumed saga creates
nothing twice) and marks each account ``metadata.seeded = <template>``; the removal deletes
only marked accounts without entries, so it tolerates a seed that ran partly or not at all
and never touches an account someone used.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.tenancy.onboarding import OnboardingRun, OnboardingStep
from tenantry_ledger.application.onboarding import (
    CHART_CURRENCY,
    SEEDED_KEY,
    STEP,
    chart,
    template_of,
)
from tenantry_ledger.domain.model import check_currency
from tenantry_ledger.infrastructure.sql import REMOVE_SEEDED, SEED_ACCOUNTS


async def seed_chart(uow: UnitOfWork, template: str, currency: str = CHART_CURRENCY) -> list[str]:
    """Create the template's accounts that do not exist yet; the codes created."""
    accounts = chart(template)
    check_currency(currency)
    if not accounts:
        return []
    rows = await uow.fetch(
        SEED_ACCOUNTS,
        currency,
        {SEEDED_KEY: template},
        [uuid.uuid4() for _ in accounts],
        [a.code for a in accounts],
        [a.name for a in accounts],
        [a.type.value for a in accounts],
        [a.allow_negative for a in accounts],
    )
    return sorted(r["code"] for r in rows)


async def remove_chart(uow: UnitOfWork, template: str) -> list[str]:
    """Remove the template's seeded accounts that carry no entries; the codes removed."""
    rows = await uow.fetch(REMOVE_SEEDED, template)
    return sorted(r["code"] for r in rows)


async def _seed(run: OnboardingRun) -> Mapping[str, Any] | None:
    template = template_of(dict(run.options))
    async with run.unit_of_work() as uow:
        created = await seed_chart(uow, template)
    run.remember(chart_of_accounts="seeded", chart_created=created)
    return None


async def _remove(run: OnboardingRun) -> None:
    if await run.tenant() is None:
        return  # the catalog row is gone: so is the store
    async with run.unit_of_work() as uow:
        await remove_chart(uow, template_of(dict(run.options)))


#: Before identity's ``admin`` step (order 60): the chart is the tenant's data, the admin
#: login the one step that needs a secret.
CHART_STEP = OnboardingStep(STEP, _seed, _remove, timeout_s=60, order=50)
