"""The unit of work as application services see it: protocols, so a service runs the same
on the kernel's ``UnitOfWork`` and on the in-memory fakes of its unit tests
(``tenantry.testing.fakes``).

A service opens units of work from a ``UnitsOfWork`` factory it is given (the kernel's
``Database.unit_of_work``), records on the unit of work what happened (``Recorder``: events
for the outbox and audit records, written by the kernel at commit) and hands the unit of
work to its repositories, which alone run SQL in it. Repositories are protocols of each
module, generic in the unit of work's type: ``Repository(Protocol[W_contra])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar
from uuid import UUID


class Recorder(Protocol):
    """What a service does with a unit of work itself: record events and audit records,
    written by the kernel at commit in the same transaction (kernel/db/commit)."""

    def publish(self, event: Any) -> UUID: ...

    def publish_many(self, events: Sequence[Any]) -> list[UUID]: ...

    def audit(
        self,
        action: str,
        resource: str | None = None,
        *,
        before: Any = None,
        after: Any = None,
        outcome: str = "success",
        details: Any = None,
    ) -> None: ...


W = TypeVar("W", bound=Recorder)
W_co = TypeVar("W_co", bound=Recorder, covariant=True)
W_contra = TypeVar("W_contra", bound=Recorder, contravariant=True)


class UnitsOfWork(Protocol[W_co]):
    """Opens a unit of work in the current tenant: commits on exit (writing what was
    published and audited), rolls back on an exception."""

    def __call__(self, *, readonly: bool = False) -> AbstractAsyncContextManager[W_co]: ...


__all__ = ["Recorder", "UnitsOfWork", "W", "W_co", "W_contra"]
