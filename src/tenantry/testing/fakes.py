"""In-memory fakes of the unit of work, for a module's fast service tests (no PostgreSQL).

``FakeUnits(state)`` is the unit-of-work factory a service is given in a unit test: each
unit of work works on a deep copy of ``state`` and keeps it, with the events and audit
records collected on it, only when its block ends without an exception, as a transaction
would (a rollback leaves nothing). It counts commits and rollbacks and remembers how each
unit of work was opened. A module's fake repository takes ``FakeUnitOfWork[State]`` and
reads ``uow.state`` (``uow.write()`` for changes: refused in a read-only unit of work).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Sequence
from typing import Any, Generic, TypeVar
from uuid import UUID

S = TypeVar("S")


class FakeUnitOfWork(Generic[S]):
    """A ``Recorder`` (kernel/db/ports) over a copy of the state."""

    def __init__(self, state: S, readonly: bool) -> None:
        self.state = state
        self.readonly = readonly
        self.events: list[Any] = []
        self.audits: list[dict[str, Any]] = []

    def publish(self, event: Any) -> UUID:
        return self.publish_many([event])[0]

    def publish_many(self, events: Sequence[Any]) -> list[UUID]:
        assert not self.readonly, "published in a read-only unit of work"
        first = len(self.events)
        self.events.extend(events)
        return [UUID(int=first + i + 1) for i in range(len(events))]

    def audit(
        self,
        action: str,
        resource: str | None = None,
        *,
        before: Any = None,
        after: Any = None,
        outcome: str = "success",
        details: Any = None,
    ) -> None:
        assert not self.readonly, "audited in a read-only unit of work"
        self.audits.append(
            {
                "action": action,
                "resource": resource,
                "before": before,
                "after": after,
                "outcome": outcome,
                "details": details,
            }
        )

    def write(self) -> S:
        """The state, to change (refused in a read-only unit of work)."""
        assert not self.readonly, "wrote in a read-only unit of work"
        return self.state


class FakeUnits(Generic[S]):
    """The unit-of-work factory (``UnitsOfWork[FakeUnitOfWork[S]]``)."""

    def __init__(self, state: S) -> None:
        self.state = state
        self.events: list[Any] = []
        self.audits: list[dict[str, Any]] = []
        self.opened: list[bool] = []  # the readonly flag of each unit of work, in order
        self.commits = 0
        self.rollbacks = 0

    @contextlib.asynccontextmanager
    async def __call__(self, *, readonly: bool = False) -> AsyncIterator[FakeUnitOfWork[S]]:
        self.opened.append(readonly)
        uow = FakeUnitOfWork(copy.deepcopy(self.state), readonly)
        try:
            yield uow
        except BaseException:
            self.rollbacks += 1
            raise
        self.commits += 1
        if not readonly:
            self.state = uow.state
            self.events.extend(uow.events)
            self.audits.extend(uow.audits)


__all__ = ["FakeUnitOfWork", "FakeUnits"]
