"""Accounts, transactions and the double-entry rules, in pure Python.

Amounts are integers in the minor unit of the account's currency. A transaction has at least
two entries and, per currency, its debits equal its credits. ``post`` applies a transaction to
the (locked) states of its accounts, or refuses it without changing anything, so a batch can be
decided item by item exactly as if the items had been posted one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from tenantry_ledger.domain.currency import minor_units

MAX_AMOUNT = 2**63 - 1


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"

    @property
    def debit_normal(self) -> bool:
        return self in (AccountType.ASSET, AccountType.EXPENSE)


class Direction(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class LedgerError(ValueError):
    """A ledger rule was broken; the message is safe to show to the caller."""

    kind = "invalid"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidAccount(LedgerError):
    kind = "invalid"


class Unbalanced(LedgerError):
    kind = "unbalanced"


class TooFewEntries(LedgerError):
    kind = "too-few-entries"


class CurrencyMismatch(LedgerError):
    kind = "currency-mismatch"


class UnknownAccount(LedgerError):
    kind = "account-not-found"


class AccountClosed(LedgerError):
    kind = "account-closed"


class InsufficientFunds(LedgerError):
    kind = "insufficient-funds"


class AmountOutOfRange(LedgerError):
    """A transaction's total or an account's debits, credits or balance would leave the
    documented range (``-MAX_AMOUNT``..``MAX_AMOUNT``, a signed 64-bit integer: what every
    client language can hold exactly)."""

    kind = "amount-out-of-range"


def default_allow_negative(account_type: AccountType) -> bool:
    """Asset and expense accounts may go negative by default; the others may not."""
    return account_type.debit_normal


def check_currency(code: str) -> str:
    if minor_units(code) is None:
        raise InvalidAccount(f"{code!r} is not an ISO 4217 currency code", "currency")
    return code


@dataclass(frozen=True, slots=True)
class Entry:
    account_id: UUID
    direction: Direction
    amount: int


@dataclass(frozen=True, slots=True)
class Draft:
    """A transaction as requested, checked for shape (not yet against accounts)."""

    description: str
    metadata: dict[str, object]
    entries: tuple[Entry, ...]
    reverses: UUID | None = None

    def __post_init__(self) -> None:
        if len(self.entries) < 2:
            raise TooFewEntries("a transaction needs at least two entries", "entries")
        debits = credits = 0
        for e in self.entries:
            if not 0 < e.amount <= MAX_AMOUNT:
                raise LedgerError(f"amount must be between 1 and {MAX_AMOUNT}", "amount")
            if e.direction is Direction.DEBIT:
                debits += e.amount
            else:
                credits += e.amount
        if debits != credits:
            raise Unbalanced(f"debits ({debits}) and credits ({credits}) differ", "entries")
        if debits > MAX_AMOUNT:
            raise AmountOutOfRange(
                f"the transaction's total ({debits}) exceeds {MAX_AMOUNT}", "entries"
            )

    @property
    def account_ids(self) -> set[UUID]:
        return {e.account_id for e in self.entries}

    @property
    def amount(self) -> int:
        return sum(e.amount for e in self.entries if e.direction is Direction.DEBIT)

    def reversed(self, original_id: UUID, description: str) -> Draft:
        flip = {Direction.DEBIT: Direction.CREDIT, Direction.CREDIT: Direction.DEBIT}
        entries = tuple(Entry(e.account_id, flip[e.direction], e.amount) for e in self.entries)
        return Draft(description, dict(self.metadata), entries, original_id)


@dataclass(slots=True)
class AccountState:
    """An account's posting-relevant state, read under a row lock."""

    id: UUID
    code: str
    type: AccountType
    currency: str
    allow_negative: bool
    status: str
    debits: int
    credits: int
    balance: int
    entry_count: int
    touched: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class PostedEntry:
    seq: int
    account_id: UUID
    account_code: str
    currency: str
    direction: Direction
    amount: int
    entry_no: int
    debits_after: int
    credits_after: int
    balance_after: int


@dataclass(frozen=True, slots=True)
class Posted:
    id: UUID
    description: str
    metadata: dict[str, object]
    posted_at: datetime
    reverses: UUID | None
    amount: int
    entries: tuple[PostedEntry, ...]


def post(
    txn_id: UUID, draft: Draft, accounts: dict[UUID, AccountState], posted_at: datetime
) -> Posted:
    """Apply ``draft`` to ``accounts`` (mutated only on success) or raise a LedgerError."""
    missing = [a for a in draft.account_ids if a not in accounts]
    if missing:
        raise UnknownAccount(f"account {sorted(missing)[0]} not found", "entries")
    per_currency: dict[str, int] = {}
    for e in draft.entries:
        acc = accounts[e.account_id]
        if acc.status != "open":
            raise AccountClosed(f"account {acc.code!r} is closed", "entries")
        signed = e.amount if e.direction is Direction.DEBIT else -e.amount
        per_currency[acc.currency] = per_currency.get(acc.currency, 0) + signed
    if any(per_currency.values()):
        raise CurrencyMismatch(
            "debits and credits must balance per currency: "
            + ", ".join(f"{c} {v:+d}" for c, v in sorted(per_currency.items()) if v),
            "entries",
        )
    scratch: dict[UUID, list[int]] = {}
    posted: list[PostedEntry] = []
    for seq, e in enumerate(draft.entries):
        acc = accounts[e.account_id]
        s = scratch.setdefault(acc.id, [acc.debits, acc.credits, acc.entry_count])
        if e.direction is Direction.DEBIT:
            s[0] += e.amount
        else:
            s[1] += e.amount
        s[2] += 1
        balance = s[0] - s[1] if acc.type.debit_normal else s[1] - s[0]
        posted.append(
            PostedEntry(
                seq, acc.id, acc.code, acc.currency, e.direction, e.amount, s[2], s[0], s[1],
                balance,
            )
        )  # fmt: skip
    for acc_id, (debits, credits, _n) in scratch.items():
        acc = accounts[acc_id]
        balance = debits - credits if acc.type.debit_normal else credits - debits
        if max(debits, credits, abs(balance)) > MAX_AMOUNT:
            raise AmountOutOfRange(
                f"account {acc.code!r} would leave the range of amounts (debits {debits}, "
                f"credits {credits}, balance {balance}; each at most {MAX_AMOUNT} in size)",
                "entries",
            )
        if balance < 0 and not acc.allow_negative:
            raise InsufficientFunds(
                f"account {acc.code!r} cannot go below zero (balance {acc.balance}, "
                f"would be {balance})",
                "entries",
            )
    for acc_id, (debits, credits, n) in scratch.items():
        acc = accounts[acc_id]
        acc.debits, acc.credits, acc.entry_count = debits, credits, n
        acc.balance = debits - credits if acc.type.debit_normal else credits - debits
        acc.touched = True
    return Posted(
        txn_id, draft.description, draft.metadata, posted_at, draft.reverses, draft.amount,
        tuple(posted),
    )  # fmt: skip
