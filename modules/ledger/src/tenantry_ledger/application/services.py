"""Ledger use cases: accounts, posting (one, a batch, a reversal), reads.

Every use case opens its unit of work from the factory the service was given (``async with
self.uow() as uow``), asks the domain to decide and the repository to read and write inside
that unit of work, and records on it what happened: ``TransactionPosted.v1`` events
(``uow.publish_many``) and audit records (``uow.audit``), which the kernel writes at commit in
the same transaction. It returns domain results (``Outcome``, row views) or raises domain
errors (``LedgerError`` kinds, application/errors.py); HTTP is the routes' business.

Posting is one unit of work whatever the number of transactions: claim the idempotency keys
and lock the accounts (one statement), decide every item on the locked rows in request order
(``domain.model.post``), write everything that was accepted with its events and audit
records (one statement: ``uow.execute_with_collected``), commit. A refused
item leaves nothing behind: its key claim is deleted in the same statement (or, for a single
transaction or an atomic batch, the whole unit of work rolls back).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic
from uuid import UUID

import orjson

from tenantry.kernel.db.ports import UnitsOfWork, W
from tenantry_ledger.application.errors import (
    AccountNotEmpty,
    AccountNotFound,
    BatchRejected,
    DuplicateCode,
    KeyReused,
    TransactionNotFound,
)
from tenantry_ledger.application.events import transaction_posted
from tenantry_ledger.application.ports import KeyClaim, LedgerRepository, Page
from tenantry_ledger.domain.model import (
    AccountType,
    Draft,
    LedgerError,
    Posted,
    check_currency,
    default_allow_negative,
    post,
)

REVERSAL_KEY_PREFIX = "~reverse:"


def request_hash(draft: Draft) -> bytes:
    """A stable digest of what a request asks for (same body -> same hash)."""
    doc = [
        draft.description,
        draft.metadata,
        [[str(e.account_id), e.direction.value, e.amount] for e in draft.entries],
        str(draft.reverses) if draft.reverses else None,
    ]
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).digest()[:16]


def posted_view(p: Posted) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "description": p.description,
        "metadata": p.metadata,
        "posted_at": p.posted_at.isoformat(),
        "reverses": str(p.reverses) if p.reverses else None,
        "amount": p.amount,
        "entries": [
            {
                "account_id": str(e.account_id),
                "account_code": e.account_code,
                "currency": e.currency,
                "direction": e.direction.value,
                "amount": e.amount,
            }
            for e in p.entries
        ],
    }


def posted_audit(p: Posted) -> dict[str, Any]:
    """What the audit record of a posting keeps: the amounts that moved, by account."""
    return {
        "amount": p.amount,
        "reverses": str(p.reverses) if p.reverses else None,
        "entries": [[str(e.account_id), e.direction.value, e.amount] for e in p.entries],
    }


@dataclass(slots=True)
class Item:
    """One transaction to post: its key, and its draft or why its shape is invalid."""

    key: str
    draft: Draft | None
    error: LedgerError | None = None
    digest: bytes = b""

    def __post_init__(self) -> None:
        if self.draft is not None and not self.digest:
            self.digest = request_hash(self.draft)


@dataclass(slots=True)
class Outcome:
    """One item's result: posted (``transaction``), replayed (``replayed``: the key's
    transaction, posted earlier for the same request) or refused (``exc``)."""

    transaction: dict[str, Any] | None = None
    replayed: bool = False
    exc: LedgerError | None = None


class LedgerService(Generic[W]):
    def __init__(self, uow: UnitsOfWork[W], repository: LedgerRepository[W]) -> None:
        #: Opens a unit of work in the current tenant (kernel: ``Database.unit_of_work``).
        self.uow = uow
        self.repository = repository

    # -- accounts ---------------------------------------------------------------------------
    async def create_account(
        self,
        code: str,
        name: str,
        type_: AccountType,
        currency: str,
        allow_negative: bool | None,
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        check_currency(currency)
        values = {
            "id": uuid.uuid4(),
            "code": code,
            "name": name,
            "type": type_.value,
            "currency": currency,
            "allow_negative": (
                default_allow_negative(type_) if allow_negative is None else allow_negative
            ),
            "metadata": metadata,
        }
        async with self.uow() as uow:
            row = await self.repository.create_account(uow, values)
            if row is None:
                raise DuplicateCode(f"an account with code {code!r} already exists")
            uow.audit(
                "ledger.account.create",
                f"account:{row['id']}",
                after={k: row[k] for k in ("code", "name", "type", "currency", "allow_negative")},
            )
        return row

    async def account(self, account_id: UUID) -> dict[str, Any]:
        async with self.uow(readonly=True) as uow:
            row = await self.repository.account(uow, account_id)
        if row is None:
            raise AccountNotFound(f"account {account_id} not found")
        return row

    async def close_account(self, account_id: UUID) -> dict[str, Any]:
        async with self.uow() as uow:
            row = await self.repository.close_account(uow, account_id)
            if row is None:
                current = await self.repository.account(uow, account_id)
                if current is None:
                    raise AccountNotFound(f"account {account_id} not found")
                raise AccountNotEmpty(
                    f"account {current['code']!r} has balance {current['balance']}; "
                    "only an account at zero can be closed"
                )
            uow.audit(
                "ledger.account.close",
                f"account:{account_id}",
                before={"status": "open"},
                after={"status": row["status"]},
            )
        return row

    async def balance(self, account_id: UUID, as_of: datetime | None) -> dict[str, Any]:
        async with self.uow(readonly=True) as uow:
            row = await self.repository.balance(uow, account_id, as_of)
        if row is None:
            raise AccountNotFound(f"account {account_id} not found")
        return row

    # -- posting ----------------------------------------------------------------------------
    async def post_one(self, key: str, draft: Draft) -> Outcome:
        """Post one transaction; raise its refusal (nothing is left behind)."""
        try:
            return (await self.post_many([Item(key, draft)], atomic=True))[0]
        except BatchRejected as rejected:
            raise rejected.first from None

    async def post_many(self, items: Sequence[Item], *, atomic: bool) -> list[Outcome]:
        """Decide and post ``items`` in order; atomic: all or none (BatchRejected)."""
        outcomes: list[Outcome | None] = [None] * len(items)
        for i, it in enumerate(items):
            if it.error is not None:
                outcomes[i] = Outcome(exc=it.error)
        if atomic and any(outcomes):
            raise _rejected(outcomes)
        live = [i for i, it in enumerate(items) if it.draft is not None]
        if not live:
            return [o for o in outcomes if o is not None]
        ids = {items[i].key: uuid.uuid4() for i in live}
        claims = sorted(
            (KeyClaim(items[i].key, items[i].digest, ids[items[i].key]) for i in live),
            key=lambda c: c.key,
        )
        account_ids = sorted({a for i in live for a in items[i].draft.account_ids})  # type: ignore[union-attr]
        repo = self.repository
        async with self.uow() as uow:
            locked = await repo.claim_and_lock(uow, claims, account_ids)
            replays: dict[int, UUID] = {}
            unclaimed = [i for i in live if items[i].key not in locked.claimed]
            if unclaimed:
                stored = await repo.stored_keys(uow, [items[i].key for i in unclaimed])
                for i in unclaimed:
                    st = stored.get(items[i].key)
                    if st is None or st.request_hash != items[i].digest:
                        outcomes[i] = Outcome(
                            exc=KeyReused(
                                f"idempotency key {items[i].key!r} was used for a different "
                                "request",
                                "Idempotency-Key",
                            )
                        )
                    else:
                        replays[i] = st.transaction_id
                        outcomes[i] = Outcome(replayed=True)
            posted: list[Posted] = []
            release: list[str] = []
            for i in live:
                if outcomes[i] is not None:
                    continue
                it = items[i]
                assert it.draft is not None
                try:
                    p = post(ids[it.key], it.draft, locked.accounts, locked.now)
                except LedgerError as exc:
                    outcomes[i] = Outcome(exc=exc)
                    release.append(it.key)
                    continue
                posted.append(p)
                outcomes[i] = Outcome(posted_view(p))
                uow.audit(
                    "ledger.transaction.reverse" if p.reverses else "ledger.transaction.post",
                    f"transaction:{p.id}",
                    after=posted_audit(p),
                    details={"idempotency_key": it.key},
                )
            if atomic and any(o is not None and o.exc is not None for o in outcomes):
                raise _rejected(outcomes)  # rolls the unit of work back
            if posted:  # collected first: the write carries them (one round trip)
                uow.publish_many([transaction_posted(p) for p in posted])
            if posted or release:
                touched = [a for a in locked.accounts.values() if a.touched]
                await repo.write(uow, posted, touched, release)
            if replays:
                views = await repo.transactions(uow, list(replays.values()))
                for i, txn_id in replays.items():
                    o = outcomes[i]
                    assert o is not None
                    o.transaction = views.get(txn_id)
        return [o for o in outcomes if o is not None]

    async def reverse(self, transaction_id: UUID, description: str | None) -> Outcome:
        """Post the reversing transaction of ``transaction_id`` (idempotent per target)."""
        async with self.uow(readonly=True) as uow:
            original = await self.repository.draft_of(uow, transaction_id)
        if original is None:
            raise TransactionNotFound(f"transaction {transaction_id} not found")
        draft = original.reversed(transaction_id, description or f"Reversal of {transaction_id}")
        return await self.post_one(f"{REVERSAL_KEY_PREFIX}{transaction_id}", draft)

    # -- reads ------------------------------------------------------------------------------
    async def transaction(self, transaction_id: UUID) -> dict[str, Any]:
        async with self.uow(readonly=True) as uow:
            views = await self.repository.transactions(uow, [transaction_id])
        row = views.get(transaction_id)
        if row is None:
            raise TransactionNotFound(f"transaction {transaction_id} not found")
        return row

    async def accounts(self, query: Any, extras: Any) -> Page:
        """One page of accounts (the filter engine's query and the ledger-only extras)."""
        async with self.uow(readonly=True) as uow:
            return await self.repository.list_accounts(uow, query, extras)

    async def transactions(self, query: Any, extras: Any) -> Page:
        async with self.uow(readonly=True) as uow:
            return await self.repository.list_transactions(uow, query, extras)

    async def statement(self, account_id: UUID, query: Any) -> Page:
        async with self.uow(readonly=True) as uow:
            page = await self.repository.statement(uow, account_id, query)
        if page is None:
            raise AccountNotFound(f"account {account_id} not found")
        return page


def _rejected(outcomes: Sequence[Outcome | None]) -> BatchRejected:
    index, first = next(
        (i, o.exc) for i, o in enumerate(outcomes) if o is not None and o.exc is not None
    )
    return BatchRejected(
        f"nothing was posted: item {index} was refused ({first})", list(outcomes), first, index
    )


__all__ = ["Item", "LedgerService", "Outcome", "posted_view", "request_hash"]
