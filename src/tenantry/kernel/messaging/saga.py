"""Sagas: persisted state machines of steps (action + compensation + timeout).

A run is recorded in ``tenantry.sagas`` before the first step and after every step, so a
crashed process leaves a row saying exactly where it stopped; ``resume_stale`` picks rows
whose heartbeat stopped (older than ``stale_s``), claimed with ``SKIP LOCKED`` and taken over
(owner and heartbeat updated) in one transaction, so two processes never run the same saga,
and carries on: forward from the step that was running, or on with the compensations.
``keep_resuming`` runs it in every ``serve`` and ``worker`` process (``Platform.start``, unless
``messaging.saga_resume`` is off), at start-up and then every ``stale_s / 2``.

Test-only pause points: with ``TENANTRY_TEST_PAUSE_AT=<where>`` in the environment (``where``
as the ``inject`` hook sees it: ``do:<step>`` before an action, ``done:<step>`` after it and
before its state is saved, ``undo:<step>`` before a compensation), the process writes its pid
to the file ``TENANTRY_TEST_PAUSE_FILE`` on reaching that point and sleeps there, so a test can
kill -9 it at an exact step (tests/integration/test_onboarding_crash.py). Inert unless set.

On a failure (an exception, or a step exceeding its timeout) the compensations of the failed
step and of every completed step run in reverse order. Actions and compensations must
therefore be idempotent, and a compensation must tolerate an action that ran partly or not
at all. The saga's ``data`` (JSON) is what steps hand to each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tenantry.kernel.db.database import Database
from tenantry.kernel.db.errors import database_unavailable
from tenantry.kernel.db.listener import backoff_delay
from tenantry.kernel.messaging import sql as q

_log = logging.getLogger(__name__)
PAUSE_AT_ENV = "TENANTRY_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "TENANTRY_TEST_PAUSE_FILE"

SagaData = dict[str, Any]
Action = Callable[[SagaData], Awaitable[SagaData | None]]
Compensation = Callable[[SagaData], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    action: Action
    compensation: Compensation | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    kind: str
    steps: Sequence[Step]


class SagaFailed(Exception):
    """A saga failed and was compensated; ``__cause__`` is the step's error."""

    def __init__(self, saga_id: UUID, step: str, error: str) -> None:
        super().__init__(f"saga {saga_id} failed at step {step!r}: {error}")
        self.saga_id = saga_id
        self.step = step
        self.error = error


class SagaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, limit: int = 50) -> list[dict[str, Any]]:
        async with self.db.platform_unit_of_work() as uow:
            return [dict(r) for r in await uow.fetch(q.SAGA_LIST, limit)]

    async def get(self, saga_id: UUID) -> dict[str, Any] | None:
        async with self.db.platform_unit_of_work() as uow:
            row = await uow.fetchrow(q.SAGA_GET, saga_id)
        return dict(row) if row else None


def persisted(data: SagaData) -> SagaData:
    """What is written to the database: keys starting with ``_`` (secrets, in-memory results)
    stay in memory."""
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _log_entry(step: str, event: str, error: str | None = None) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"step": step, "event": event, "at": datetime.now(UTC).isoformat()}
    if error:
        entry["error"] = error
    return [entry]


class SagaRunner:
    def __init__(self, db: Database, stale_s: float = 30.0) -> None:
        self.db = db
        self.stale_s = stale_s
        self.definitions: dict[str, SagaDefinition] = {}
        self.owner = f"{os.uname().nodename}:{os.getpid()}"
        #: Test hook, awaited before each action (``"do:step"``), after it (``"done:step"``)
        #: and before each compensation (``"undo:step"``), with the saga kind.
        self.inject: Callable[[str, str], Awaitable[None]] | None = _pause_from_env()

    def define(self, definition: SagaDefinition) -> None:
        self.definitions[definition.kind] = definition

    async def _save(
        self,
        sid: UUID,
        status: str,
        step: int,
        data: SagaData,
        log: list[dict[str, Any]],
        error: str | None,
    ) -> None:
        async with self.db.platform_unit_of_work() as uow:
            await uow.execute(q.SAGA_SAVE, sid, status, step, persisted(data), log, error)

    async def start(self, kind: str, data: SagaData, saga_id: UUID | None = None) -> SagaData:
        """Run a new saga to its end; return its data, or raise SagaFailed (compensated)."""
        sid = saga_id or uuid.uuid4()
        async with self.db.platform_unit_of_work() as uow:
            await uow.execute(q.SAGA_INSERT, sid, kind, persisted(data), self.owner)
        return await self._run(sid, kind, "running", 0, dict(data))

    async def _beat(self, sid: UUID) -> None:
        while True:
            await asyncio.sleep(max(0.2, self.stale_s / 3))
            with contextlib.suppress(Exception):
                async with self.db.platform_unit_of_work() as uow:
                    await uow.execute(q.SAGA_BEAT, sid)

    async def _run(self, sid: UUID, kind: str, status: str, step: int, data: SagaData) -> SagaData:
        definition = self.definitions[kind]
        steps = definition.steps
        beat = asyncio.create_task(self._beat(sid))
        try:
            if status == "running":
                # One state write per step: "s done" travels with "s+1 started" (the state
                # after a crash between the two is the same: step s+1 not yet done).
                done: list[dict[str, Any]] = []
                while step < len(steps):
                    s = steps[step]
                    await self._save(
                        sid, "running", step, data, [*done, *_log_entry(s.name, "started")], None
                    )
                    done = []
                    try:
                        if self.inject is not None:
                            await self.inject(kind, f"do:{s.name}")
                        out = await asyncio.wait_for(s.action(data), s.timeout_s)
                        if self.inject is not None:
                            await self.inject(kind, f"done:{s.name}")
                    except Exception as exc:
                        error = (
                            f"timed out after {s.timeout_s}s"
                            if isinstance(exc, TimeoutError)
                            else f"{type(exc).__name__}: {exc}"
                        )
                        # Compensate the failed step too: it may have half-happened.
                        await self._save(
                            sid,
                            "compensating",
                            step + 1,
                            data,
                            _log_entry(s.name, "failed", error),
                            error,
                        )
                        await self._compensate(sid, kind, step + 1, data, error)
                        raise SagaFailed(sid, s.name, error) from exc
                    if out:
                        data.update(out)
                    step += 1
                    done = _log_entry(s.name, "done")
                await self._save(
                    sid, "completed", step, data, [*done, *_log_entry("*", "completed")], None
                )
                return data
            row = await SagaStore(self.db).get(sid)
            error = (row or {}).get("error") or "resumed compensation"
            await self._compensate(sid, kind, step, data, error)
            raise SagaFailed(sid, steps[max(0, step - 1)].name, error)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _compensate(
        self, sid: UUID, kind: str, remaining: int, data: SagaData, error: str
    ) -> None:
        steps = self.definitions[kind].steps
        while remaining > 0:
            s = steps[remaining - 1]
            if s.compensation is not None:
                if self.inject is not None:
                    await self.inject(kind, f"undo:{s.name}")
                await asyncio.wait_for(s.compensation(data), max(s.timeout_s, 30.0))
            remaining -= 1
            await self._save(
                sid, "compensating", remaining, data, _log_entry(s.name, "compensated"), error
            )
        await self._save(sid, "failed", 0, data, _log_entry("*", "failed"), error)

    async def keep_resuming(self, interval_s: float | None = None) -> None:
        """``resume_stale`` now and then every ``interval_s`` (default ``stale_s / 2``) until
        cancelled; a failed round is logged and retried, never raised (a lost database
        included: the loop outlives any number of connection losses)."""
        failures = 0
        while True:
            pause = interval_s or max(0.1, self.stale_s / 2)
            try:
                for sid, status in await self.resume_stale():
                    _log.warning("resumed saga %s: %s", sid, status)
                failures = 0
            except Exception as exc:
                # A lost database is expected now and then: a warning, and the next round
                # sooner (0.1 s doubling to 5 s, never later than the usual interval).
                failures += 1
                if database_unavailable(exc):
                    _log.warning("resuming stale sagas: database unavailable (%s); retrying", exc)
                    pause = min(pause, backoff_delay(failures - 1, 0.1, 5.0))
                else:
                    _log.exception("resuming stale sagas failed; retrying")
            await asyncio.sleep(pause)

    async def resume_stale(self) -> list[tuple[UUID, str]]:
        """Carry on every saga whose process died; returns (id, final status) pairs."""
        done: list[tuple[UUID, str]] = []
        while True:
            async with self.db.platform_unit_of_work() as uow:
                row = await uow.fetchrow(q.SAGA_CLAIM_STALE, self.stale_s)
                if row is None:
                    return done
                await uow.execute(q.SAGA_TAKE, row["id"], self.owner)
            if row["kind"] not in self.definitions:
                continue
            try:
                await self._run(row["id"], row["kind"], row["status"], row["step"], row["data"])
                done.append((row["id"], "completed"))
            except SagaFailed:
                done.append((row["id"], "failed"))


def _pause_from_env() -> Callable[[str, str], Awaitable[None]] | None:
    """The test-only pause point (module docstring); None unless ``TENANTRY_TEST_PAUSE_AT``."""
    at = os.environ.get(PAUSE_AT_ENV, "").strip()
    if not at:
        return None
    marker = os.environ.get(PAUSE_FILE_ENV, "")

    async def pause(_kind: str, where: str) -> None:
        if where != at:
            return
        if marker:
            with open(marker, "w", encoding="utf-8") as f:  # noqa: ASYNC230 - test hook
                f.write(str(os.getpid()))
        await asyncio.sleep(3600)  # until killed

    return pause
