"""Ledger use cases: accounts, posting (one, a batch, a reversal), reads.

Posting is one unit of work whatever the number of transactions: claim the idempotency keys
and lock the accounts (one statement), decide every item on the locked rows in request order
(``domain.model.post``), write everything that was accepted (one statement), commit. A refused
item leaves nothing behind: its key claim is deleted in the same statement (or, for a single
transaction or an atomic batch, the whole unit of work rolls back).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from tenantry.modules.ledger.application.errors import (
    AccountNotEmpty,
    AccountNotFound,
    BatchRejected,
    DuplicateCode,
    KeyReused,
    RuleBroken,
    TransactionNotFound,
    problem_body,
)
from tenantry.modules.ledger.application.events import transaction_posted
from tenantry.modules.ledger.application.ports import KeyClaim, LedgerStore, PostingSession
from tenantry.modules.ledger.contracts import TransactionPosted
from tenantry.modules.ledger.domain.model import (
    AccountType,
    Draft,
    LedgerError,
    Posted,
    check_currency,
    default_allow_negative,
    post,
)

REVERSAL_KEY_PREFIX = "~reverse:"
Publisher = Callable[[PostingSession, list[TransactionPosted]], Awaitable[None]]


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
    status: int
    transaction: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    replayed: bool = False
    exc: LedgerError | None = None

    def as_dict(self, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {"index": index, "status": self.status}
        if self.transaction is not None:
            out["transaction"] = self.transaction
            out["replayed"] = self.replayed
        if self.error is not None:
            out["error"] = self.error
        return out


class LedgerService:
    def __init__(self, store: LedgerStore, publish: Publisher | None = None) -> None:
        self.store = store
        #: Called inside the posting's unit of work with the events of what was posted
        #: (the outbox, once messaging lands). None: events are not even built.
        self.publish = publish

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
        try:
            check_currency(currency)
        except LedgerError as exc:
            raise RuleBroken(exc) from None
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
        row = await self.store.create_account(values)
        if row is None:
            raise DuplicateCode(f"an account with code {code!r} already exists")
        return row

    async def account(self, account_id: UUID) -> dict[str, Any]:
        row = await self.store.account(account_id)
        if row is None:
            raise AccountNotFound(f"account {account_id} not found")
        return row

    async def close_account(self, account_id: UUID) -> dict[str, Any]:
        row = await self.store.close_account(account_id)
        if row is None:
            current = await self.account(account_id)
            raise AccountNotEmpty(
                f"account {current['code']!r} has balance {current['balance']}; "
                "only an account at zero can be closed"
            )
        return row

    async def balance(self, account_id: UUID, as_of: datetime | None) -> dict[str, Any]:
        row = await self.store.balance(account_id, as_of)
        if row is None:
            raise AccountNotFound(f"account {account_id} not found")
        return row

    # -- posting ----------------------------------------------------------------------------
    async def post_one(self, key: str, draft: Draft) -> Outcome:
        """Post one transaction; raise its problem if refused (nothing is left behind)."""
        try:
            return (await self.post_many([Item(key, draft)], atomic=True))[0]
        except BatchRejected as rejected:
            if rejected.first is None:
                raise
            raise RuleBroken(rejected.first) from None

    async def post_many(self, items: Sequence[Item], *, atomic: bool) -> list[Outcome]:
        """Decide and post ``items`` in order; atomic: all or none (BatchRejected)."""
        outcomes: list[Outcome | None] = [None] * len(items)
        for i, it in enumerate(items):
            if it.error is not None:
                outcomes[i] = _refused(it.error)
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
        async with self.store.posting() as session:
            locked = await session.claim_and_lock(claims, account_ids)
            replays: dict[int, UUID] = {}
            unclaimed = [i for i in live if items[i].key not in locked.claimed]
            if unclaimed:
                stored = await session.stored_keys([items[i].key for i in unclaimed])
                for i in unclaimed:
                    st = stored.get(items[i].key)
                    if st is None or st.request_hash != items[i].digest:
                        outcomes[i] = _refused(
                            KeyReused(
                                f"idempotency key {items[i].key!r} was used for a different "
                                "request",
                                "Idempotency-Key",
                            )
                        )
                    else:
                        replays[i] = st.transaction_id
                        outcomes[i] = Outcome(st.status_code, replayed=True)
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
                    outcomes[i] = _refused(exc)
                    release.append(it.key)
                    continue
                posted.append(p)
                outcomes[i] = Outcome(201, posted_view(p))
            if atomic and any(o is not None and o.exc is not None for o in outcomes):
                raise _rejected(outcomes)  # rolls the unit of work back
            if posted or release:
                touched = [a for a in locked.accounts.values() if a.touched]
                await session.write(posted, touched, release)
            if posted and self.publish is not None:
                await self.publish(session, [transaction_posted(p) for p in posted])
            if replays:
                views = await session.transactions(list(replays.values()))
                for i, txn_id in replays.items():
                    o = outcomes[i]
                    assert o is not None
                    o.transaction = views.get(txn_id)
        return [o for o in outcomes if o is not None]

    async def reverse(self, transaction_id: UUID, description: str | None) -> Outcome:
        """Post the reversing transaction of ``transaction_id`` (idempotent per target)."""
        async with self.store.posting() as session:
            original = await session.draft_of(transaction_id)
        if original is None:
            raise TransactionNotFound(f"transaction {transaction_id} not found")
        draft = original.reversed(transaction_id, description or f"Reversal of {transaction_id}")
        return await self.post_one(f"{REVERSAL_KEY_PREFIX}{transaction_id}", draft)

    # -- reads ------------------------------------------------------------------------------
    async def transaction(self, transaction_id: UUID) -> dict[str, Any]:
        row = await self.store.transaction(transaction_id)
        if row is None:
            raise TransactionNotFound(f"transaction {transaction_id} not found")
        return row

    async def statement(
        self, account_id: UUID, query: Any
    ) -> tuple[list[dict[str, Any]], str | None]:
        page = await self.store.statement(account_id, query)
        if page is None:
            raise AccountNotFound(f"account {account_id} not found")
        return page


def _refused(exc: LedgerError) -> Outcome:
    body = problem_body(exc)
    return Outcome(body["status"], error=body, exc=exc)


def _rejected(outcomes: Sequence[Outcome | None]) -> BatchRejected:
    results = [
        (o.as_dict(i) if o is not None and o.exc is not None else {"index": i, "status": 424})
        for i, o in enumerate(outcomes)
    ]
    first = next(o for o in outcomes if o is not None and o.exc is not None)
    assert first.exc is not None
    index = next(i for i, r in enumerate(results) if r["status"] != 424)
    exc = BatchRejected(
        f"nothing was posted: item {index} was refused ({first.exc})", results=results
    )
    exc.status = first.status
    exc.first = first.exc
    return exc


__all__ = ["Item", "LedgerService", "Outcome", "posted_view", "request_hash"]
