"""The ledger repository: its SQL, run in the unit of work the application service opened."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from tenantry.capabilities.pagination import ListQuery
from tenantry.kernel.db.uow import UnitOfWork
from tenantry_ledger.application.ports import KeyClaim, Locked, StoredKey
from tenantry_ledger.domain.currency import MINOR_UNITS
from tenantry_ledger.domain.model import (
    AccountState,
    AccountType,
    Direction,
    Draft,
    Entry,
    Posted,
)
from tenantry_ledger.infrastructure import sql
from tenantry_ledger.infrastructure.lists import Extras


def account_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "code": r["code"],
        "name": r["name"],
        "type": r["type"],
        "currency": r["currency"],
        "minor_units": MINOR_UNITS.get(r["currency"]),
        "allow_negative": r["allow_negative"],
        "status": r["status"],
        "metadata": r["metadata"],
        "created_at": r["created_at"].isoformat(),
        "debits": int(r["debits"]),
        "credits": int(r["credits"]),
        "balance": int(r["balance"]),
    }


def transaction_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "description": r["description"],
        "metadata": r["metadata"],
        "posted_at": r["posted_at"].isoformat(),
        "reverses": str(r["reverses"]) if r["reverses"] else None,
        "amount": int(r["amount"]),
        "entries": r["entries"] or [],
    }


class SqlLedgerRepository:
    """The ledger's rows in the caller's unit of work (``LedgerRepository[UnitOfWork]``):
    never opens a transaction, publishes or audits."""

    async def claim_and_lock(
        self, uow: UnitOfWork, claims: Sequence[KeyClaim], account_ids: Sequence[UUID]
    ) -> Locked:
        rows = await uow.fetch(
            sql.CLAIM_AND_LOCK,
            [c.key for c in claims],
            [c.request_hash for c in claims],
            [c.transaction_id for c in claims],
            list(account_ids),
        )
        claimed: set[str] = set()
        accounts: dict[UUID, AccountState] = {}
        now: datetime | None = None
        for r in rows:
            kind = r["kind"]
            if kind == "a":
                accounts[r["id"]] = AccountState(
                    r["id"],
                    r["code"],
                    AccountType(r["type"]),
                    r["currency"],
                    r["allow_negative"],
                    r["status"],
                    int(r["debits"]),
                    int(r["credits"]),
                    int(r["balance"]),
                    r["entry_count"],
                )
            elif kind == "k":
                claimed.add(r["key"])
            else:
                now = r["ts"]
        assert now is not None
        return Locked(claimed, accounts, now)

    async def stored_keys(self, uow: UnitOfWork, keys: Sequence[str]) -> dict[str, StoredKey]:
        rows = await uow.fetch(sql.STORED_KEYS, list(keys))
        return {
            r["key"]: StoredKey(bytes(r["request_hash"]), r["transaction_id"], r["status_code"])
            for r in rows
        }

    async def write(
        self,
        uow: UnitOfWork,
        posted: Sequence[Posted],
        accounts: Sequence[AccountState],
        release: Sequence[str],
    ) -> None:
        posted_at = posted[0].posted_at if posted else datetime.now().astimezone()
        e_txn: list[UUID] = []
        e_seq: list[int] = []
        e_acc: list[UUID] = []
        e_dir: list[str] = []
        e_amt: list[int] = []
        e_no: list[int] = []
        e_dr: list[str] = []
        e_cr: list[str] = []
        e_bal: list[str] = []
        for p in posted:
            for e in p.entries:
                e_txn.append(p.id)
                e_seq.append(e.seq)
                e_acc.append(e.account_id)
                e_dir.append(e.direction.value)
                e_amt.append(e.amount)
                e_no.append(e.entry_no)
                e_dr.append(str(e.debits_after))
                e_cr.append(str(e.credits_after))
                e_bal.append(str(e.balance_after))
        # The events and audit records collected on the unit of work join this statement
        # (kernel/db/commit.join): the commit that follows writes nothing more.
        await uow.execute_with_collected(
            sql.WRITE,
            posted_at,
            [p.id for p in posted],
            [p.description for p in posted],
            [orjson.dumps(p.metadata).decode() for p in posted],
            [str(p.amount) for p in posted],
            [p.reverses for p in posted],
            e_txn,
            e_seq,
            e_acc,
            e_dir,
            e_amt,
            e_no,
            e_dr,
            e_cr,
            e_bal,
            [a.id for a in accounts],
            [str(a.debits) for a in accounts],
            [str(a.credits) for a in accounts],
            [str(a.balance) for a in accounts],
            [a.entry_count for a in accounts],
            list(release),
        )

    async def transactions(
        self, uow: UnitOfWork, ids: Sequence[UUID]
    ) -> dict[UUID, dict[str, Any]]:
        rows = await uow.fetch(sql.TRANSACTIONS_BY_ID, list(ids))
        return {r["id"]: transaction_view(r) for r in rows}

    async def draft_of(self, uow: UnitOfWork, transaction_id: UUID) -> Draft | None:
        rows = await uow.fetch(sql.ENTRIES_OF, transaction_id)
        if not rows:
            return None
        entries = tuple(
            Entry(r["account_id"], Direction(r["direction"]), r["amount"]) for r in rows
        )
        return Draft("", {}, entries)

    async def create_account(
        self, uow: UnitOfWork, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        row = await uow.fetchrow(
            sql.INSERT_ACCOUNT,
            values["id"],
            values["code"],
            values["name"],
            values["type"],
            values["currency"],
            values["allow_negative"],
            values["metadata"],
        )
        return account_view(row) if row else None

    async def account(self, uow: UnitOfWork, account_id: UUID) -> dict[str, Any] | None:
        row = await uow.fetchrow(sql.GET_ACCOUNT, account_id)
        return account_view(row) if row else None

    async def close_account(self, uow: UnitOfWork, account_id: UUID) -> dict[str, Any] | None:
        row = await uow.fetchrow(sql.CLOSE_ACCOUNT, account_id)
        return account_view(row) if row else None

    async def balance(
        self, uow: UnitOfWork, account_id: UUID, as_of: datetime | None
    ) -> dict[str, Any] | None:
        if as_of is None:
            row = await uow.fetchrow(sql.BALANCE, account_id)
        else:
            row = await uow.fetchrow(sql.BALANCE_AS_OF, account_id, as_of)
        if row is None:
            return None
        return {
            "account_id": str(row["id"]),
            "currency": row["currency"],
            "debits": int(row["debits"]),
            "credits": int(row["credits"]),
            "balance": int(row["balance"]),
            "as_of": (as_of or row["as_of"]).isoformat(),
        }

    async def list_accounts(
        self, uow: UnitOfWork, query: ListQuery, extras: Extras
    ) -> tuple[list[dict[str, Any]], str | None]:
        text, args = query.render(sql.LIST_ACCOUNTS, extras.metadata)
        rows = await uow.fetch(text, *args)
        return [account_view(r) for r in rows[: query.limit]], query.next_cursor(rows)

    async def list_transactions(
        self, uow: UnitOfWork, query: ListQuery, extras: Extras
    ) -> tuple[list[dict[str, Any]], str | None]:
        text, args = query.render(sql.LIST_TRANSACTIONS, extras.account_id, extras.metadata)
        rows = await uow.fetch(text, *args)
        return [transaction_view(r) for r in rows[: query.limit]], query.next_cursor(rows)

    async def statement(
        self, uow: UnitOfWork, account_id: UUID, query: ListQuery
    ) -> tuple[list[dict[str, Any]], str | None] | None:
        """An account's entries with the running balance (keyset on entry_no)."""
        text, args = query.render(sql.STATEMENT, account_id)
        if await uow.fetchval(sql.ACCOUNT_EXISTS, account_id) is None:
            return None
        rows = await uow.fetch(text, *args)
        items = [
            {
                "entry_no": r["entry_no"],
                "transaction_id": str(r["transaction_id"]),
                "description": r["description"],
                "posted_at": r["posted_at"].isoformat(),
                "direction": r["direction"],
                "amount": r["amount"],
                "balance_after": int(r["balance_after"]),
            }
            for r in rows[: query.limit]
        ]
        return items, query.next_cursor(rows)
