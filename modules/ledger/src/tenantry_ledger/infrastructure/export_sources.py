"""The ledger's export sources (``/api/v1/exports``): accounts, transactions, and entries as
statement lines. The export engine runs these in the tenant's unit of work (RLS applies)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.capabilities.export.sources import Column, Source, export_sources
from tenantry_ledger.infrastructure.sql import ACCOUNTS_SQL, ENTRIES_SQL, TRANSACTIONS_SQL

if TYPE_CHECKING:
    from tenantry.kernel.registrar import Registrar

READ = "ledger:read"

SOURCES = (
    Source(
        "ledger.accounts",
        ACCOUNTS_SQL,
        (
            Column("id", "uuid"),
            Column("code"),
            Column("name"),
            Column("type"),
            Column("currency"),
            Column("status"),
            Column("balance", "numeric", scale=0),
            Column("debits", "numeric", scale=0),
            Column("credits", "numeric", scale=0),
            Column("entry_count", "int"),
            Column("created_at", "timestamptz"),
        ),
        ("code",),
        permission=READ,
        title="Ledger accounts",
    ),
    Source(
        "ledger.transactions",
        TRANSACTIONS_SQL,
        (
            Column("id", "uuid"),
            Column("posted_at", "timestamptz"),
            Column("description"),
            Column("amount", "numeric", scale=0),
            Column("reverses", "uuid"),
        ),
        ("posted_at", "id"),
        permission=READ,
        title="Ledger transactions",
    ),
    Source(
        "ledger.entries",
        ENTRIES_SQL,
        (
            Column("account_code"),
            Column("entry_no", "int"),
            Column("account_id", "uuid"),
            Column("transaction_id", "uuid"),
            Column("seq", "int"),
            Column("posted_at", "timestamptz"),
            Column("direction"),
            Column("amount", "int"),
            Column("balance_after", "numeric", scale=0),
            Column("description", width=30),
        ),
        ("account_code", "entry_no"),
        permission=READ,
        title="Ledger statement lines",
    ),
)


def register_export_sources(platform: Registrar) -> None:
    reg = export_sources(platform)
    for source in SOURCES:
        reg.register(source)
