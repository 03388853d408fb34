"""The ledger's public surface: integration events other modules may consume.

Versioned names are stable; a breaking change gets a new version (``.v2``) beside the old.
Amounts are integers in minor units of the currency.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class PostedEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    account_id: UUID
    account_code: str
    currency: str
    direction: Literal["debit", "credit"]
    amount: int


class TransactionPosted(BaseModel):
    """A transaction was posted (published in the same database transaction)."""

    model_config = ConfigDict(frozen=True)
    message_name: ClassVar[str] = "ledger.TransactionPosted.v1"

    transaction_id: UUID
    posted_at: datetime
    description: str
    entries: list[PostedEntry]
    reverses: UUID | None = None


__all__ = ["PostedEntry", "TransactionPosted"]
