"""What the ledger's use cases need from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from tenantry.modules.ledger.domain.model import AccountState, Draft, Posted


@dataclass(frozen=True, slots=True)
class KeyClaim:
    key: str
    request_hash: bytes
    transaction_id: UUID


@dataclass(frozen=True, slots=True)
class StoredKey:
    request_hash: bytes
    transaction_id: UUID
    status_code: int


@dataclass(slots=True)
class Locked:
    claimed: set[str]
    accounts: dict[UUID, AccountState]
    now: datetime


class PostingSession(Protocol):
    """One database transaction of a posting (commits on exit, rolls back on an exception)."""

    async def claim_and_lock(
        self, claims: Sequence[KeyClaim], account_ids: Sequence[UUID]
    ) -> Locked: ...

    async def stored_keys(self, keys: Sequence[str]) -> dict[str, StoredKey]: ...

    async def write(
        self, posted: Sequence[Posted], accounts: Sequence[AccountState], release: Sequence[str]
    ) -> None: ...

    async def transactions(self, ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]: ...

    async def draft_of(self, transaction_id: UUID) -> Draft | None: ...


class LedgerStore(Protocol):
    def posting(self) -> AbstractAsyncContextManager[PostingSession]: ...

    async def create_account(self, values: dict[str, Any]) -> dict[str, Any] | None: ...
    async def account(self, account_id: UUID) -> dict[str, Any] | None: ...
    async def close_account(self, account_id: UUID) -> dict[str, Any] | None: ...
    async def balance(self, account_id: UUID, as_of: datetime | None) -> dict[str, Any] | None: ...
    async def transaction(self, transaction_id: UUID) -> dict[str, Any] | None: ...
    async def list_accounts(
        self, query: Any, extras: Any
    ) -> tuple[list[dict[str, Any]], str | None]: ...
    async def list_transactions(
        self, query: Any, extras: Any
    ) -> tuple[list[dict[str, Any]], str | None]: ...
    async def statement(
        self, account_id: UUID, query: Any
    ) -> tuple[list[dict[str, Any]], str | None] | None: ...
