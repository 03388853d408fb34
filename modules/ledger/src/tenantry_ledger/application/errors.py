"""The ledger's refusals as domain errors (``LedgerError`` kinds), with no HTTP in them:
routes.py maps each kind to its problem type and status at the edge."""

from __future__ import annotations

from typing import Any

from tenantry_ledger.domain.model import LedgerError


class AccountNotFound(LedgerError):
    kind = "account-not-found"


class TransactionNotFound(LedgerError):
    kind = "transaction-not-found"


class DuplicateCode(LedgerError):
    kind = "duplicate-code"


class AccountNotEmpty(LedgerError):
    kind = "account-not-empty"


class KeyReused(LedgerError):
    kind = "idempotency-key-reused"


class ItemInvalid(LedgerError):
    """A batch item whose shape is invalid (the message lists the fields)."""

    kind = "validation-error"


class BatchRejected(LedgerError):
    """An atomic batch was refused: nothing was posted. ``outcomes``: every item's outcome
    (``Outcome`` for the refused ones, None for those refused only with the batch);
    ``first``: the first refusal, ``index`` its item."""

    kind = "batch-rejected"

    def __init__(self, message: str, outcomes: list[Any], first: LedgerError, index: int):
        super().__init__(message)
        self.outcomes = outcomes
        self.first = first
        self.index = index
