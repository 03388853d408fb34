"""In-memory fakes of the unit of work and the ledger repository: ``LedgerService`` runs on
them exactly as on PostgreSQL (the protocols of ledger/application/ports.py), without a
database.

``FakeUnits`` is the unit-of-work factory: each unit of work works on a copy of the
repository's state and publishes it, with the events and audit records collected on it, only
when its block ends without an exception (a rollback leaves nothing, as in the database).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias
from uuid import UUID

from tenantry.testing import fakes
from tenantry_ledger.application.ports import KeyClaim, Locked, Page, StoredKey
from tenantry_ledger.application.services import LedgerService, posted_view
from tenantry_ledger.domain.currency import MINOR_UNITS
from tenantry_ledger.domain.model import (
    AccountState,
    AccountType,
    Direction,
    Draft,
    Entry,
    Posted,
)


@dataclass
class State:
    """The rows of one tenant's ledger."""

    accounts: dict[UUID, AccountState] = field(default_factory=dict)
    meta: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, StoredKey] = field(default_factory=dict)
    transactions: dict[UUID, Posted] = field(default_factory=dict)


FakeUnitOfWork: TypeAlias = fakes.FakeUnitOfWork[State]


class FakeUnits(fakes.FakeUnits[State]):
    """The unit-of-work factory (tenantry.testing.fakes) over an empty ``State``."""

    def __init__(self) -> None:
        super().__init__(State())


def _account_view(a: AccountState, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "code": a.code,
        "name": meta["name"],
        "type": a.type.value,
        "currency": a.currency,
        "minor_units": MINOR_UNITS.get(a.currency),
        "allow_negative": a.allow_negative,
        "status": a.status,
        "metadata": meta["metadata"],
        "created_at": meta["created_at"].isoformat(),
        "debits": a.debits,
        "credits": a.credits,
        "balance": a.balance,
    }


class FakeLedgerRepository:
    """``LedgerRepository[FakeUnitOfWork]``: the SQL repository's behaviour on a dict."""

    async def claim_and_lock(
        self, uow: FakeUnitOfWork, claims: Sequence[KeyClaim], account_ids: Sequence[UUID]
    ) -> Locked:
        st = uow.write()
        claimed = set()
        for c in claims:
            if c.key not in st.keys:
                st.keys[c.key] = StoredKey(c.request_hash, c.transaction_id, 201)
                claimed.add(c.key)
        accounts = (
            {a: copy.copy(st.accounts[a]) for a in account_ids if a in st.accounts}
            if claimed
            else {}
        )
        return Locked(claimed, accounts, datetime.now(UTC))

    async def stored_keys(self, uow: FakeUnitOfWork, keys: Sequence[str]) -> dict[str, StoredKey]:
        return {k: uow.state.keys[k] for k in keys if k in uow.state.keys}

    async def write(
        self,
        uow: FakeUnitOfWork,
        posted: Sequence[Posted],
        accounts: Sequence[AccountState],
        release: Sequence[str],
    ) -> None:
        st = uow.write()
        for p in posted:
            st.transactions[p.id] = p
        for a in accounts:
            st.accounts[a.id] = copy.copy(a)
            st.accounts[a.id].touched = False
        for k in release:
            st.keys.pop(k, None)

    async def transactions(
        self, uow: FakeUnitOfWork, ids: Sequence[UUID]
    ) -> dict[UUID, dict[str, Any]]:
        return {
            i: posted_view(uow.state.transactions[i]) for i in ids if i in uow.state.transactions
        }

    async def draft_of(self, uow: FakeUnitOfWork, transaction_id: UUID) -> Draft | None:
        p = uow.state.transactions.get(transaction_id)
        if p is None:
            return None
        return Draft("", {}, tuple(Entry(e.account_id, e.direction, e.amount) for e in p.entries))

    async def create_account(
        self, uow: FakeUnitOfWork, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        st = uow.write()
        if any(a.code == values["code"] for a in st.accounts.values()):
            return None
        a = AccountState(
            values["id"],
            values["code"],
            AccountType(values["type"]),
            values["currency"],
            values["allow_negative"],
            "open",
            0,
            0,
            0,
            0,
        )
        st.accounts[a.id] = a
        st.meta[a.id] = {
            "name": values["name"],
            "metadata": values["metadata"],
            "created_at": datetime.now(UTC),
        }
        return _account_view(a, st.meta[a.id])

    async def account(self, uow: FakeUnitOfWork, account_id: UUID) -> dict[str, Any] | None:
        a = uow.state.accounts.get(account_id)
        return _account_view(a, uow.state.meta[a.id]) if a else None

    async def close_account(self, uow: FakeUnitOfWork, account_id: UUID) -> dict[str, Any] | None:
        st = uow.write()
        a = st.accounts.get(account_id)
        if a is None or a.balance != 0:
            return None
        a.status = "closed"
        return _account_view(a, st.meta[a.id])

    async def balance(
        self, uow: FakeUnitOfWork, account_id: UUID, as_of: datetime | None
    ) -> dict[str, Any] | None:
        a = uow.state.accounts.get(account_id)
        if a is None:
            return None
        return {
            "account_id": str(a.id),
            "currency": a.currency,
            "debits": a.debits,
            "credits": a.credits,
            "balance": a.balance,
            "as_of": (as_of or datetime.now(UTC)).isoformat(),
        }

    async def list_accounts(self, uow: FakeUnitOfWork, query: Any, extras: Any) -> Page:
        st = uow.state
        return [_account_view(a, st.meta[a.id]) for a in st.accounts.values()], None

    async def list_transactions(self, uow: FakeUnitOfWork, query: Any, extras: Any) -> Page:
        return [posted_view(p) for p in uow.state.transactions.values()], None

    async def statement(self, uow: FakeUnitOfWork, account_id: UUID, query: Any) -> Page | None:
        if account_id not in uow.state.accounts:
            return None
        items = [
            {"entry_no": e.entry_no, "transaction_id": str(p.id), "amount": e.amount}
            for p in uow.state.transactions.values()
            for e in p.entries
            if e.account_id == account_id
        ]
        return items, None


def fake_service() -> tuple[LedgerService[FakeUnitOfWork], FakeUnits]:
    units = FakeUnits()
    return LedgerService(units, FakeLedgerRepository()), units


__all__ = ["Direction", "FakeLedgerRepository", "FakeUnits", "fake_service"]
