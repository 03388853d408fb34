"""Reporting's export source (``/api/v1/exports``): the per-tenant daily summary. The export
engine runs it in the tenant's unit of work (RLS applies)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.capabilities.export.sources import Column, Source, export_sources
from tenantry_reporting.infrastructure.sql import DAILY_SQL

if TYPE_CHECKING:
    from tenantry.kernel.registrar import Registrar

DAILY = Source(
    "reporting.daily",
    DAILY_SQL,
    (
        Column("day", "date"),
        Column("account_id", "uuid"),
        Column("account_code"),
        Column("currency"),
        Column("debit", "int"),
        Column("credit", "int"),
        Column("volume", "int"),
        Column("count", "int"),
    ),
    ("day", "account_code", "currency"),
    permission="reporting:read",
    title="Daily summary per account and currency",
)


def register_export_sources(platform: Registrar) -> None:
    export_sources(platform).register(DAILY)
