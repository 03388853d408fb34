"""The ledger's rules without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tenantry_ledger.domain.currency import minor_units
from tenantry_ledger.domain.model import (
    AccountClosed,
    AccountState,
    AccountType,
    AmountOutOfRange,
    CurrencyMismatch,
    Direction,
    Draft,
    Entry,
    InsufficientFunds,
    LedgerError,
    TooFewEntries,
    Unbalanced,
    UnknownAccount,
    post,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
D, C = Direction.DEBIT, Direction.CREDIT


def acc(type_: str = "asset", currency: str = "EUR", **kw: object) -> AccountState:
    t = AccountType(type_)
    values: dict[str, object] = {
        "allow_negative": t.debit_normal, "status": "open", "debits": 0, "credits": 0,
        "balance": 0, "entry_count": 0, **kw,
    }  # fmt: skip
    return AccountState(uuid.uuid4(), f"c-{type_}", t, currency, **values)  # type: ignore[arg-type]


def test_currencies() -> None:
    assert (minor_units("EUR"), minor_units("JPY"), minor_units("KWD")) == (2, 0, 3)
    assert minor_units("XYZ") is None


def test_draft_shape() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(TooFewEntries):
        Draft("", {}, (Entry(a, D, 1),))
    with pytest.raises(Unbalanced):
        Draft("", {}, (Entry(a, D, 2), Entry(b, C, 1)))
    with pytest.raises(LedgerError):
        Draft("", {}, (Entry(a, D, 0), Entry(b, C, 0)))
    with pytest.raises(LedgerError):
        Draft("", {}, (Entry(a, D, 2**63), Entry(b, C, 2**63)))


def test_post_updates_totals_and_running_balances() -> None:
    cash, equity = acc("asset"), acc("equity")
    books = {cash.id: cash, equity.id: equity}
    p = post(
        uuid.uuid4(), Draft("", {}, (Entry(cash.id, D, 70), Entry(equity.id, C, 70))), books, NOW
    )
    assert (cash.debits, cash.balance, cash.entry_count) == (70, 70, 1)
    assert (equity.credits, equity.balance) == (70, 70)
    assert [e.balance_after for e in p.entries] == [70, 70]
    assert p.amount == 70


def test_post_refuses_without_changing_anything() -> None:
    eur, usd, liab = acc(), acc(currency="USD"), acc("liability")
    closed = acc(status="closed")
    books = {x.id: x for x in (eur, usd, liab, closed)}
    cases = [
        ((Entry(eur.id, D, 5), Entry(usd.id, C, 5)), CurrencyMismatch),
        ((Entry(eur.id, D, 5), Entry(uuid.uuid4(), C, 5)), UnknownAccount),
        ((Entry(eur.id, D, 5), Entry(closed.id, C, 5)), AccountClosed),
        ((Entry(liab.id, D, 5), Entry(eur.id, C, 5)), InsufficientFunds),
    ]
    for entries, error in cases:
        with pytest.raises(error):
            post(uuid.uuid4(), Draft("", {}, entries), books, NOW)
    assert all((x.debits, x.credits, x.entry_count) == (0, 0, 0) for x in books.values())


def test_reversal_flips_entries() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    d = Draft("x", {}, (Entry(a, D, 3), Entry(b, C, 3)))
    r = d.reversed(uuid.uuid4(), "undo")
    assert [(e.account_id, e.direction) for e in r.entries] == [(a, C), (b, D)]


def test_transaction_posted_event_equals_the_validated_model() -> None:
    """``transaction_posted`` builds the contract's model from the posted transaction."""
    from tenantry_ledger.application.events import transaction_posted
    from tenantry_ledger.contracts import TransactionPosted

    a, b = acc("asset"), acc("liability")
    accounts = {a.id: a, b.id: b}
    draft = Draft("rent", {"k": 1}, (Entry(a.id, D, 70), Entry(b.id, C, 70)), uuid.uuid4())
    p = post(uuid.uuid4(), draft, accounts, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    event = transaction_posted(p)
    validated = TransactionPosted.model_validate(event.model_dump())
    assert event == validated
    assert event.model_dump(mode="json") == validated.model_dump(mode="json")
    assert event.model_dump(mode="json")["entries"][0] == {
        "account_id": str(a.id),
        "account_code": "c-asset",
        "currency": "EUR",
        "direction": "debit",
        "amount": 70,
    }


def test_totals_stay_in_int64() -> None:
    big = 2**63 - 1
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    with pytest.raises(AmountOutOfRange):
        Draft("", {}, (Entry(a, D, big), Entry(b, D, big), Entry(c, C, big), Entry(d, C, big)))
    cash, equity = acc("asset", debits=big, balance=big), acc("equity", allow_negative=True)
    books = {cash.id: cash, equity.id: equity}
    with pytest.raises(AmountOutOfRange):
        post(
            uuid.uuid4(), Draft("", {}, (Entry(cash.id, D, 1), Entry(equity.id, C, 1))), books, NOW
        )
    assert (cash.debits, equity.credits) == (big, 0)  # untouched on refusal
    p = post(
        uuid.uuid4(), Draft("", {}, (Entry(equity.id, D, 1), Entry(cash.id, C, 1))), books, NOW
    )
    assert p.amount == 1
    assert cash.balance == big - 1
