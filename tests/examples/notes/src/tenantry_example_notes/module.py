"""The example module in one file (a real module splits it as docs/modules.md shows): a
table, two routes, a handler of identity's ``UserAddedToTenant`` that writes a welcome note,
and an audit record per note."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.http.deps import require
from tenantry.kernel.modules import Module
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.context import Principal
from tenantry_identity.contracts import UserAddedToTenant

READ, WRITE = "notes:read", "notes:write"
INSERT_NOTE = "INSERT INTO example_notes (body) VALUES ($1) RETURNING id, body, created_at"
LIST_NOTES = "SELECT id, body, created_at FROM example_notes ORDER BY created_at, id"


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=1000)


def _note(row: Any) -> dict[str, Any]:
    return {"id": str(row["id"]), "body": row["body"], "created_at": row["created_at"].isoformat()}


class Notes:
    def __init__(self, registrar: Registrar) -> None:
        self.uow = registrar.db.unit_of_work

    async def add(self, body: str) -> dict[str, Any]:
        async with self.uow() as uow:
            row = await uow.fetchrow(INSERT_NOTE, body)
            assert row is not None  # INSERT ... RETURNING
            uow.audit("notes.note.create", f"note:{row['id']}", after={"body": body})
        return _note(row)

    async def all(self) -> list[dict[str, Any]]:
        async with self.uow(readonly=True) as uow:
            return [_note(r) for r in await uow.fetch(LIST_NOTES)]

    async def on_user_added(self, uow: UnitOfWork, event: UserAddedToTenant, ctx: Any) -> None:
        await uow.fetchrow(INSERT_NOTE, f"welcome {event.email}")


def build_router(notes: Notes) -> APIRouter:
    router = APIRouter(tags=["notes"])

    @router.post("/notes", status_code=201)
    async def add(body: NoteIn, _: Annotated[Principal, Depends(require(WRITE))]) -> Any:
        return await notes.add(body.body)

    @router.get("/notes")
    async def all_notes(_: Annotated[Principal, Depends(require(READ))]) -> Any:
        return {"items": await notes.all()}

    return router


class NotesModule(Module):
    name: ClassVar[str] = "notes"
    depends_on: ClassVar[tuple[str, ...]] = ("identity",)
    migrations: ClassVar[str | None] = "tenantry_example_notes.migrations"
    permissions: ClassVar[dict[str, str]] = {READ: "read notes", WRITE: "write notes"}

    def setup(self, registrar: Registrar) -> None:
        notes = Notes(registrar)
        registrar.include_router(build_router(notes))
        registrar.subscribe(UserAddedToTenant, notes.on_user_added)


module = NotesModule()
