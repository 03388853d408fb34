"""LedgerService on the in-memory fakes (ledger_fakes.py): posting, idempotent
replay, reversal, batches and the domain errors, without PostgreSQL. What the service records
on its unit of work (events, audit) is kept only when the unit of work commits."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ledger_fakes import FakeUnits, fake_service
from tenantry_ledger.application.errors import (
    AccountNotEmpty,
    AccountNotFound,
    BatchRejected,
    DuplicateCode,
    ItemInvalid,
    KeyReused,
    TransactionNotFound,
)
from tenantry_ledger.application.services import REVERSAL_KEY_PREFIX, Item
from tenantry_ledger.contracts import TransactionPosted
from tenantry_ledger.domain.model import (
    AccountClosed,
    AccountType,
    CurrencyMismatch,
    Direction,
    Draft,
    Entry,
    InsufficientFunds,
    InvalidAccount,
    UnknownAccount,
)

D, C = Direction.DEBIT, Direction.CREDIT


def transfer(src: Any, dst: Any, amount: int, description: str = "") -> Draft:
    return Draft(
        description,
        {},
        (Entry(uuid.UUID(dst["id"]), D, amount), Entry(uuid.UUID(src["id"]), C, amount)),
    )


async def accounts(service: Any, *types: AccountType, currency: str = "EUR") -> list[Any]:
    return [
        await service.create_account(f"c{i}-{currency}", f"n{i}", t, currency, None, {})
        for i, t in enumerate(types)
    ]


async def test_posting_moves_balances_publishes_and_audits() -> None:
    service, units = fake_service()
    cash, revenue = await accounts(service, AccountType.ASSET, AccountType.INCOME)
    out = await service.post_one("k1", transfer(revenue, cash, 40, "sale"))
    assert out.transaction is not None
    assert not out.replayed
    assert out.exc is None
    assert (await service.balance(uuid.UUID(cash["id"]), None))["balance"] == 40
    assert (await service.balance(uuid.UUID(revenue["id"]), None))["balance"] == 40
    assert [type(e) for e in units.events] == [TransactionPosted]
    assert str(units.events[0].transaction_id) == out.transaction["id"]
    post = [a for a in units.audits if a["action"] == "ledger.transaction.post"]
    assert len(post) == 1
    assert post[0]["resource"] == f"transaction:{out.transaction['id']}"
    assert post[0]["details"] == {"idempotency_key": "k1"}
    assert [a["action"] for a in units.audits].count("ledger.account.create") == 2


async def test_the_same_key_and_body_replays_without_a_second_posting() -> None:
    service, units = fake_service()
    cash, revenue = await accounts(service, AccountType.ASSET, AccountType.INCOME)
    first = await service.post_one("k", transfer(revenue, cash, 5))
    again = await service.post_one("k", transfer(revenue, cash, 5))
    assert again.replayed
    assert again.transaction == first.transaction
    assert (await service.balance(uuid.UUID(cash["id"]), None))["balance"] == 5
    assert len(units.events) == 1  # a replay publishes nothing
    assert [a["action"] for a in units.audits].count("ledger.transaction.post") == 1
    with pytest.raises(KeyReused):  # same key, another body
        await service.post_one("k", transfer(revenue, cash, 6))


async def test_a_refused_posting_leaves_nothing_behind() -> None:
    service, units = fake_service()
    cash, debt = await accounts(service, AccountType.ASSET, AccountType.LIABILITY)
    events, audits, rollbacks = len(units.events), len(units.audits), units.rollbacks
    with pytest.raises(InsufficientFunds):
        await service.post_one("k", transfer(cash, debt, 10))  # debit a liability below 0
    assert units.rollbacks == rollbacks + 1
    assert (len(units.events), len(units.audits)) == (events, audits)
    assert units.state.keys == {}  # the key claim went with the rollback: it can be reused
    ok = await service.post_one("k", transfer(debt, cash, 10))
    assert ok.transaction is not None


async def test_reversal_posts_the_mirror_once() -> None:
    service, units = fake_service()
    cash, revenue = await accounts(service, AccountType.ASSET, AccountType.INCOME)
    out = await service.post_one("k", transfer(revenue, cash, 7))
    assert out.transaction is not None
    txn = uuid.UUID(out.transaction["id"])
    rev = await service.reverse(txn, None)
    assert rev.transaction is not None
    assert rev.transaction["reverses"] == str(txn)
    assert rev.transaction["description"] == f"Reversal of {txn}"
    assert (await service.balance(uuid.UUID(cash["id"]), None))["balance"] == 0
    again = await service.reverse(txn, None)  # idempotent per target
    assert again.replayed
    assert f"{REVERSAL_KEY_PREFIX}{txn}" in units.state.keys
    assert [a["action"] for a in units.audits].count("ledger.transaction.reverse") == 1
    with pytest.raises(TransactionNotFound):
        await service.reverse(uuid.uuid4(), None)


async def test_domain_errors_of_accounts() -> None:
    service, units = fake_service()
    (cash, revenue) = await accounts(service, AccountType.ASSET, AccountType.INCOME)
    with pytest.raises(DuplicateCode):
        await service.create_account("c0-EUR", "again", AccountType.ASSET, "EUR", None, {})
    with pytest.raises(InvalidAccount):
        await service.create_account("x", "x", AccountType.ASSET, "XXX", None, {})
    with pytest.raises(AccountNotFound):
        await service.account(uuid.uuid4())
    with pytest.raises(AccountNotFound):
        await service.balance(uuid.uuid4(), None)
    with pytest.raises(AccountNotFound):
        await service.statement(uuid.uuid4(), None)
    with pytest.raises(AccountNotFound):
        await service.close_account(uuid.uuid4())
    await service.post_one("k", transfer(revenue, cash, 3))
    with pytest.raises(AccountNotEmpty):
        await service.close_account(uuid.UUID(cash["id"]))
    empty = await service.create_account("e", "empty", AccountType.ASSET, "EUR", None, {})
    closed = await service.close_account(uuid.UUID(empty["id"]))
    assert closed["status"] == "closed"
    assert units.audits[-1]["action"] == "ledger.account.close"
    with pytest.raises(AccountClosed):
        await service.post_one("k2", transfer(empty, cash, 1))
    with pytest.raises(UnknownAccount):
        await service.post_one(
            "k3", Draft("", {}, (Entry(uuid.uuid4(), D, 1), Entry(uuid.UUID(cash["id"]), C, 1)))
        )
    (usd,) = await accounts(service, AccountType.ASSET, currency="USD")
    with pytest.raises(CurrencyMismatch):
        await service.post_one("k4", transfer(usd, cash, 1))
    with pytest.raises(TransactionNotFound):
        await service.transaction(uuid.uuid4())


async def test_batches_non_atomic_and_atomic() -> None:
    service, units = fake_service()
    cash, revenue, debt = await accounts(
        service, AccountType.ASSET, AccountType.INCOME, AccountType.LIABILITY
    )
    items = [
        Item("a", transfer(revenue, cash, 1)),
        Item("b", transfer(cash, debt, 5)),  # refused: liability below zero
        Item("c", None, ItemInvalid("entries: field required")),
        Item("d", transfer(revenue, cash, 2)),
    ]
    outcomes = await service.post_many(items, atomic=False)
    assert [o.exc is None for o in outcomes] == [True, False, False, True]
    assert isinstance(outcomes[1].exc, InsufficientFunds)
    assert len(units.events) == 2
    assert "b" not in units.state.keys  # a refused item's key is released
    events = len(units.events)
    with pytest.raises(BatchRejected) as rejected:
        await service.post_many(
            [Item("e", transfer(revenue, cash, 1)), Item("f", transfer(cash, debt, 9))],
            atomic=True,
        )
    assert rejected.value.index == 1
    assert isinstance(rejected.value.first, InsufficientFunds)
    assert len(units.events) == events
    assert "e" not in units.state.keys


async def test_the_fake_unit_of_work_rolls_back_like_the_database() -> None:
    units = FakeUnits()

    async def failing() -> None:
        async with units() as uow:
            uow.write().keys["x"] = None  # type: ignore[assignment]
            uow.audit("test.dropped")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await failing()
    assert units.state.keys == {}
    assert units.audits == []
    assert (units.commits, units.rollbacks) == (0, 1)
