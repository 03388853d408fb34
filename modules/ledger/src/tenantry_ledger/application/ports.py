"""What the ledger's use cases need from the outside world: a unit of work (opened from the
factory the service is given) and a repository that works inside it.

Both are protocols generic over the unit of work's type, so the service runs the same way
on the kernel's ``UnitOfWork`` + ``SqlLedgerRepository`` and on the in-memory fakes of the
unit tests (modules/ledger/tests/ledger_fakes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from tenantry.kernel.db.ports import W_contra
from tenantry_ledger.domain.model import AccountState, Draft, Posted


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


Page = tuple[list[dict[str, Any]], str | None]


class LedgerRepository(Protocol[W_contra]):
    """The ledger's rows, inside the caller's unit of work (never opens, commits, publishes
    or audits)."""

    async def claim_and_lock(
        self, uow: W_contra, claims: Sequence[KeyClaim], account_ids: Sequence[UUID]
    ) -> Locked: ...

    async def stored_keys(self, uow: W_contra, keys: Sequence[str]) -> dict[str, StoredKey]: ...

    async def write(
        self,
        uow: W_contra,
        posted: Sequence[Posted],
        accounts: Sequence[AccountState],
        release: Sequence[str],
    ) -> None: ...

    async def transactions(
        self, uow: W_contra, ids: Sequence[UUID]
    ) -> dict[UUID, dict[str, Any]]: ...

    async def draft_of(self, uow: W_contra, transaction_id: UUID) -> Draft | None: ...

    async def create_account(
        self, uow: W_contra, values: dict[str, Any]
    ) -> dict[str, Any] | None: ...

    async def account(self, uow: W_contra, account_id: UUID) -> dict[str, Any] | None: ...

    async def close_account(self, uow: W_contra, account_id: UUID) -> dict[str, Any] | None: ...

    async def balance(
        self, uow: W_contra, account_id: UUID, as_of: datetime | None
    ) -> dict[str, Any] | None: ...

    async def list_accounts(self, uow: W_contra, query: Any, extras: Any) -> Page: ...

    async def list_transactions(self, uow: W_contra, query: Any, extras: Any) -> Page: ...

    async def statement(self, uow: W_contra, account_id: UUID, query: Any) -> Page | None: ...
