"""The ledger's problems (RFC 9457): each has its own ``type`` so a client can act on it."""

from __future__ import annotations

from typing import Any

from tenantry.kernel.errors import Conflict, NotFound, ValidationFailed
from tenantry.modules.ledger.domain.model import LedgerError


class AccountNotFound(NotFound):
    type_slug, title = "ledger-account-not-found", "Account not found"


class TransactionNotFound(NotFound):
    type_slug, title = "ledger-transaction-not-found", "Transaction not found"


class DuplicateCode(Conflict):
    type_slug, title = "ledger-duplicate-code", "Account code already used"


class AccountNotEmpty(Conflict):
    type_slug, title = "ledger-account-not-empty", "Account balance is not zero"


class IdempotencyKeyReused(Conflict):
    type_slug, title = "idempotency-key-reused", "Idempotency key reused with another body"


class BatchRejected(ValidationFailed):
    """An atomic batch (or a single posting) was refused; ``first`` is the first reason."""

    type_slug, title = "ledger-batch-rejected", "Atomic batch rejected"
    first: LedgerError | None = None


# LedgerError.kind -> (status, type slug, title)
RULES: dict[str, tuple[int, str, str]] = {
    "invalid": (422, "ledger-invalid", "Invalid ledger request"),
    "unbalanced": (422, "ledger-unbalanced", "Unbalanced transaction"),
    "too-few-entries": (422, "ledger-too-few-entries", "Too few entries"),
    "currency-mismatch": (422, "ledger-currency-mismatch", "Currencies do not balance"),
    "account-not-found": (404, "ledger-account-not-found", "Account not found"),
    "account-closed": (422, "ledger-account-closed", "Account closed"),
    "insufficient-funds": (409, "ledger-insufficient-funds", "Insufficient funds"),
    "idempotency-key-reused": (
        409, "idempotency-key-reused", "Idempotency key reused with another body",
    ),
    "amount-out-of-range": (422, "amount-out-of-range", "Amount out of range"),
    "validation-error": (422, "validation-error", "Validation failed"),
}  # fmt: skip


class RuleBroken(ValidationFailed):
    """A LedgerError shown as a problem; status and type depend on the rule."""

    def __init__(self, exc: LedgerError, **extra: Any) -> None:
        status, slug, title = RULES[exc.kind]
        errors = [{"field": exc.field, "message": str(exc)}] if exc.field else None
        super().__init__(str(exc), errors=errors, **extra)
        self.status, self.type_slug, self.title = status, slug, title


def problem_body(exc: LedgerError) -> dict[str, Any]:
    """The problem document of one refused batch item."""
    status, slug, title = RULES[exc.kind]
    body: dict[str, Any] = {
        "type": "https://tenantry.dev/problems/" + slug,
        "title": title,
        "status": status,
        "detail": str(exc),
    }
    if exc.field:
        body["errors"] = [{"field": exc.field, "message": str(exc)}]
    return body


class KeyReused(LedgerError):
    kind = "idempotency-key-reused"


class ItemInvalid(LedgerError):
    """A batch item whose shape is invalid (the message lists the fields)."""

    kind = "validation-error"
