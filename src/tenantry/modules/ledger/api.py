"""Ledger's startup object and HTTP routes (``/api/v1/ledger``).

Hot routes (``POST /transactions``, ``POST /transactions/batch``, ``GET .../balance``) parse
their body with pydantic-core directly (``model_validate_json``) and return a ``JsonResponse``
(orjson, no response-model re-validation). Permission checks are the kernel's ``require``
wrapped in an ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a
thread hop per request on the hottest routes for a check that costs a set lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    TypeAdapter,
    ValidationError,
)

from tenantry.capabilities.filtering import FieldSet
from tenantry.capabilities.pagination import MAX_LIMIT, ListQuery, list_query
from tenantry.capabilities.pagination.http import (
    cursor_signer,
    document_list,
    document_search,
    parse_filter_param,
)
from tenantry.kernel.errors import BadRequest, ValidationFailed
from tenantry.kernel.http.deps import require
from tenantry.kernel.http.idempotency import IdempotencyKey, document_key, idempotency_key
from tenantry.kernel.http.openapi import documents, problems_extra
from tenantry.kernel.http.responses import JsonResponse
from tenantry.kernel.http.types import JsonInt
from tenantry.kernel.messaging import Dispatcher
from tenantry.kernel.modules import Module
from tenantry.kernel.registrar import Registrar
from tenantry.kernel.tenancy.context import Principal, current_tenant
from tenantry.modules.ledger.application.errors import (
    ItemInvalid,
    RuleBroken,
)
from tenantry.modules.ledger.application.onboarding import CHART_OPTION, check_onboarding_request
from tenantry.modules.ledger.application.ports import PostingSession
from tenantry.modules.ledger.application.services import (
    REVERSAL_KEY_PREFIX,
    Item,
    LedgerService,
    Outcome,
    Publisher,
)
from tenantry.modules.ledger.contracts import TransactionPosted
from tenantry.modules.ledger.domain.currency import MINOR_UNITS
from tenantry.modules.ledger.domain.model import (
    MAX_AMOUNT,
    AccountType,
    Direction,
    Draft,
    Entry,
    LedgerError,
)
from tenantry.modules.ledger.infrastructure.export_sources import register_export_sources
from tenantry.modules.ledger.infrastructure.lists import (
    ACCOUNT_FIELDS,
    ENTRY_FIELDS,
    TRANSACTION_FIELDS,
    Extras,
    split_extras,
)
from tenantry.modules.ledger.infrastructure.onboarding import CHART_STEP
from tenantry.modules.ledger.infrastructure.repository import SqlLedgerStore, SqlPostingSession

READ = "ledger:read"
WRITE = "ledger:write"
MAX_BATCH = 1000


class Strict(BaseModel):
    """Request bodies reject unknown fields: a body can never carry ``tenant_id``."""

    model_config = ConfigDict(extra="forbid")


_CURRENCIES: list[JsonValue] = list(sorted(MINOR_UNITS))


class AccountIn(Strict):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    type: AccountType
    # checked by the domain (422 naming the code); the enum tells clients which ones
    currency: str = Field(
        pattern=r"^[A-Z]{3}$", json_schema_extra={"enum": list[JsonValue](sorted(MINOR_UNITS))}
    )
    allow_negative: StrictBool | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class EntryIn(Strict):
    account_id: UUID
    direction: Direction
    amount: JsonInt = Field(gt=0, le=MAX_AMOUNT)


class TransactionIn(Strict):
    description: str = Field(default="", max_length=500)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # at least two: checked by the domain (422 ``ledger-invalid``), stated in the schema
    entries: list[EntryIn] = Field(max_length=100, json_schema_extra={"minItems": 2})


class BatchItemIn(TransactionIn):
    idempotency_key: IdempotencyKey


class BatchIn(Strict):
    atomic: StrictBool = False
    transactions: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class BatchFastIn(Strict):
    """The batch body when every item is valid: parsed from the JSON bytes in one pass
    (pydantic-core), instead of JSON -> dicts -> one validation per item. Any error falls
    back to ``BatchIn`` and per-item validation, which reports it exactly as before."""

    atomic: StrictBool = False
    transactions: list[BatchItemIn] = Field(min_length=1, max_length=MAX_BATCH)


class ReverseIn(Strict):
    description: str | None = Field(default=None, max_length=500)


_BATCH_ITEM = TypeAdapter(BatchItemIn)


def _field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    return [
        {
            "field": prefix + ".".join(str(p) for p in err["loc"]),
            "in": "body",
            "message": err["msg"],
        }
        for err in exc.errors()
    ]


def _draft(body: TransactionIn) -> Draft:
    return Draft(
        body.description,
        body.metadata,
        tuple(Entry(e.account_id, e.direction, e.amount) for e in body.entries),
    )


def _parse(model: type[Strict], raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise BadRequest("the request body is not valid JSON") from None
        raise ValidationFailed(
            "the request has invalid fields", errors=_field_errors(exc)
        ) from None


def _idempotency_key(request: Request) -> str:
    key = idempotency_key(request, required=True)
    assert key is not None  # required=True raises instead
    return key


def _posted_response(outcome: Outcome) -> JsonResponse:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JsonResponse(outcome.transaction, status_code=outcome.status, headers=headers)


def _allowed(action: str) -> Callable[..., Awaitable[Principal]]:
    """``require(action)``: already an async dependency (no thread-pool hop); it asks the
    platform's authorizer (the authz capability) when one is registered."""
    return require(action)


CanRead = Annotated[Principal, Depends(_allowed(READ))]
CanWrite = Annotated[Principal, Depends(_allowed(WRITE))]


def _scope() -> str:
    tenant = current_tenant()
    return str(tenant.id) if tenant else "-"


Listed = tuple[ListQuery, Extras]


def _extras_schema(account_filter: bool) -> list[dict[str, Any]]:
    """The ledger-only conditions of the top-level ``filters`` (``split_extras``)."""

    def eq(field: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"field": field, "op": {"const": "eq"}, "value": value},
            "required": ["field", "value"],
            "additionalProperties": False,
        }

    out = [eq({"type": "string", "pattern": r"^metadata\.[^\x00]{1,63}$"}, {})]
    if account_filter:
        out.append(eq({"const": "account_id"}, {"type": "string", "format": "uuid"}))
    return out


def _ledger_list(fieldset: FieldSet, *, account_filter: bool = False) -> Any:
    """``list_query`` plus the ledger-only conditions (account_id, metadata.<key>)."""

    @documents(document_list(fieldset, top_level=_extras_schema(account_filter)))
    async def dependency(
        request: Request,
        filter_: Annotated[str | None, Query(alias="filter", description="filter document")] = None,
        sort: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Listed:
        doc, extras = split_extras(parse_filter_param(filter_), account_filter=account_filter)
        q = ListQuery.parse(
            fieldset,
            await cursor_signer(request),
            document=doc,
            sort=sort,
            limit=limit,
            cursor=cursor,
            scope=_scope(),
        )
        return q, extras

    return dependency


def _ledger_search(fieldset: FieldSet, *, account_filter: bool = False) -> Any:
    """The same for ``POST .../search`` (document, limit and cursor in the body)."""

    @documents(document_search(fieldset, top_level=_extras_schema(account_filter)))
    async def dependency(
        request: Request, body: Annotated[dict[str, Any] | None, Body()] = None
    ) -> Listed:
        doc = dict(body or {})
        limit, cursor = doc.pop("limit", 50), doc.pop("cursor", None)
        doc, extras = split_extras(doc, account_filter=account_filter)
        q = ListQuery.parse(
            fieldset,
            await cursor_signer(request),
            document=doc,
            limit=limit,
            cursor=cursor,
            scope=_scope(),
        )
        return q, extras

    return dependency


AccountList = Annotated[Listed, Depends(_ledger_list(ACCOUNT_FIELDS))]
AccountSearch = Annotated[Listed, Depends(_ledger_search(ACCOUNT_FIELDS))]
TransactionList = Annotated[Listed, Depends(_ledger_list(TRANSACTION_FIELDS, account_filter=True))]
TransactionSearch = Annotated[
    Listed, Depends(_ledger_search(TRANSACTION_FIELDS, account_filter=True))
]
EntryList = Annotated[ListQuery, Depends(list_query(ENTRY_FIELDS))]


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body the route parses itself (JSON Schema 2020-12, inline $defs)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def build_router(service: LedgerService) -> APIRouter:
    router = APIRouter(tags=["ledger"])
    store = service.store

    # -- accounts ---------------------------------------------------------------------------
    @router.post("/accounts", status_code=201, openapi_extra=problems_extra(409))
    async def create_account(body: AccountIn, _: CanWrite) -> JsonResponse:
        row = await service.create_account(
            body.code, body.name, body.type, body.currency, body.allow_negative, body.metadata
        )
        return JsonResponse(row, status_code=201)

    @router.get("/accounts")
    async def list_accounts(_: CanRead, q: AccountList) -> JsonResponse:
        items, nxt = await store.list_accounts(*q)
        return JsonResponse({"items": items, "next_cursor": nxt})

    @router.post("/accounts/search")
    async def search_accounts(_: CanRead, q: AccountSearch) -> JsonResponse:
        items, nxt = await store.list_accounts(*q)
        return JsonResponse({"items": items, "next_cursor": nxt})

    @router.get("/accounts/{account_id:uuid}")
    async def get_account(account_id: UUID, _: CanRead) -> JsonResponse:
        return JsonResponse(await service.account(account_id))

    @router.post("/accounts/{account_id:uuid}/close", openapi_extra=problems_extra(409))
    async def close_account(account_id: UUID, _: CanWrite) -> JsonResponse:
        return JsonResponse(await service.close_account(account_id))

    @router.get("/accounts/{account_id:uuid}/balance")
    async def balance(
        account_id: UUID, _: CanRead, as_of: Annotated[datetime | None, Query()] = None
    ) -> JsonResponse:
        return JsonResponse(await service.balance(account_id, as_of))

    @router.get("/accounts/{account_id:uuid}/entries")
    async def entries(account_id: UUID, _: CanRead, q: EntryList) -> JsonResponse:
        items, nxt = await service.statement(account_id, q)
        return JsonResponse({"items": items, "next_cursor": nxt})

    # -- transactions -----------------------------------------------------------------------
    @router.post(
        "/transactions",
        status_code=201,
        openapi_extra=problems_extra(404, 409, **_body_doc(TransactionIn)),
        summary="Post a transaction (Idempotency-Key header required)",
    )
    @documents(document_key(required=True))
    async def post_transaction(request: Request, _: CanWrite) -> JsonResponse:
        key = _idempotency_key(request)
        body: TransactionIn = _parse(TransactionIn, await request.body())
        try:
            draft = _draft(body)
        except LedgerError as exc:
            raise RuleBroken(exc) from None
        return _posted_response(await service.post_one(key, draft))

    @router.post(
        "/transactions/batch",
        openapi_extra=problems_extra(404, 409, **_body_doc(BatchIn)),
        summary="Post up to 1,000 transactions, each with its idempotency_key",
    )
    async def post_batch(request: Request, _: CanWrite) -> JsonResponse:
        raw_body = await request.body()
        body: BatchIn | BatchFastIn
        try:
            body = BatchFastIn.model_validate_json(raw_body or b"{}")
        except ValidationError:
            body = _parse(BatchIn, raw_body)
        items: list[Item] = []
        seen: set[str] = set()
        raws: Sequence[BatchItemIn | dict[str, Any]] = body.transactions
        for i, raw in enumerate(raws):
            key = (
                raw.idempotency_key if isinstance(raw, BatchItemIn) else raw.get("idempotency_key")
            )
            try:
                item = raw if isinstance(raw, BatchItemIn) else _BATCH_ITEM.validate_python(raw)
                if item.idempotency_key in seen:
                    raise LedgerError(
                        f"idempotency_key {item.idempotency_key!r} appears twice in the batch",
                        "idempotency_key",
                    )
                seen.add(item.idempotency_key)
                items.append(Item(item.idempotency_key, _draft(item)))
            except ValidationError as exc:
                errors = _field_errors(exc, f"transactions.{i}.")
                err = ItemInvalid("; ".join(f"{e['field']}: {e['message']}" for e in errors))
                items.append(Item(str(key), None, err))
            except LedgerError as exc:
                items.append(Item(str(key), None, exc))
        outcomes = await service.post_many(items, atomic=body.atomic)
        results = [o.as_dict(i) for i, o in enumerate(outcomes)]
        accepted = sum(1 for o in outcomes if o.exc is None)
        return JsonResponse(
            {"accepted": accepted, "refused": len(outcomes) - accepted, "results": results}
        )

    @router.get("/transactions")
    async def list_transactions(_: CanRead, q: TransactionList) -> JsonResponse:
        items, nxt = await store.list_transactions(*q)
        return JsonResponse({"items": items, "next_cursor": nxt})

    @router.post("/transactions/search")
    async def search_transactions(_: CanRead, q: TransactionSearch) -> JsonResponse:
        items, nxt = await store.list_transactions(*q)
        return JsonResponse({"items": items, "next_cursor": nxt})

    @router.get("/transactions/{transaction_id:uuid}")
    async def get_transaction(transaction_id: UUID, _: CanRead) -> JsonResponse:
        return JsonResponse(await service.transaction(transaction_id))

    @router.post(
        "/transactions/{transaction_id:uuid}/reverse",
        status_code=201,
        openapi_extra=problems_extra(409),
    )
    async def reverse(
        transaction_id: UUID, _: CanWrite, body: ReverseIn | None = None
    ) -> JsonResponse:
        outcome = await service.reverse(transaction_id, body.description if body else None)
        return _posted_response(outcome)

    return router


def outbox_publisher(dispatcher: Dispatcher) -> Publisher:
    """Publish ``TransactionPosted.v1`` through the outbox, in the posting's own transaction:
    one statement for all the events of a posting (``Dispatcher.publish_many``), so a batch of
    1,000 transactions costs one outbox round trip, not 1,000."""

    async def publish(session: PostingSession, events: list[TransactionPosted]) -> None:
        assert isinstance(session, SqlPostingSession)
        await dispatcher.publish_many(session.uow, events)

    return publish


class LedgerModule(Module):
    name: ClassVar[str] = "ledger"
    depends_on: ClassVar[tuple[str, ...]] = ("identity",)
    migrations: ClassVar[str | None] = "tenantry.modules.ledger.migrations"
    permissions: ClassVar[dict[str, str]] = {
        READ: "read accounts, balances, transactions and statements",
        WRITE: "open and close accounts, post and reverse transactions",
    }
    default_roles: ClassVar[dict[str, list[str]]] = {
        "accountant": [READ, WRITE],
        "ledger-viewer": [READ],
    }
    onboarding_options = (CHART_OPTION,)

    def __init__(self) -> None:
        self.service: LedgerService | None = None

    def setup(self, registrar: Registrar) -> None:
        # TransactionPosted.v1 goes to the outbox in the posting's own transaction (reporting
        # and notifications consume it), one outbox statement per posting or batch.
        service = LedgerService(
            SqlLedgerStore(registrar.db), outbox_publisher(registrar.dispatcher)
        )
        self.service = service
        registrar.include_router(build_router(service))
        register_export_sources(registrar)
        # Onboarding: the chart-of-accounts step (and its compensation) and its option.
        registrar.check_provision_request(check_onboarding_request)
        registrar.add_onboarding_step(CHART_STEP)


module = LedgerModule()

__all__ = ["REVERSAL_KEY_PREFIX", "LedgerModule", "build_router", "module"]
