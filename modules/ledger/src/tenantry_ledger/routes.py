"""Ledger's HTTP routes (``/api/v1/ledger``): HTTP only. Each route parses and validates its
request, calls one application service (``LedgerService``), and maps its result or domain
error to a response: the problem type and status of every ``LedgerError`` kind are decided
here (``RULES``), never by the service.

A replayed posting answers 201 like the first one (the idempotency record's status), with
``Idempotent-Replayed: true``.

Hot routes (``POST /transactions``, ``POST /transactions/batch``, ``GET .../balance``) parse
their body with pydantic-core directly (``model_validate_json``) and return a ``JsonResponse``
(orjson, no response-model re-validation). Permission checks are the kernel's ``require``
wrapped in an ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a
thread hop per request on the hottest routes for a check that costs a set lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any
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
from tenantry.kernel.errors import BadRequest, ProblemError, ValidationFailed
from tenantry.kernel.http.deps import require
from tenantry.kernel.http.idempotency import IdempotencyKey, document_key, idempotency_key
from tenantry.kernel.http.openapi import documents, problems_extra
from tenantry.kernel.http.responses import JsonResponse
from tenantry.kernel.http.types import JsonInt
from tenantry.kernel.tenancy.context import Principal, current_tenant
from tenantry_ledger.application.errors import BatchRejected, ItemInvalid
from tenantry_ledger.application.services import Item, LedgerService, Outcome
from tenantry_ledger.domain.currency import MINOR_UNITS
from tenantry_ledger.domain.model import (
    MAX_AMOUNT,
    AccountType,
    Direction,
    Draft,
    Entry,
    LedgerError,
)
from tenantry_ledger.infrastructure.lists import (
    ACCOUNT_FIELDS,
    ENTRY_FIELDS,
    TRANSACTION_FIELDS,
    Extras,
    split_extras,
)

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


# LedgerError.kind -> (status, problem type slug, title): the edge's mapping of the ledger's
# domain errors (application/errors.py, domain/model.py) to RFC 9457 problems.
RULES: dict[str, tuple[int, str, str]] = {
    "invalid": (422, "ledger-invalid", "Invalid ledger request"),
    "unbalanced": (422, "ledger-unbalanced", "Unbalanced transaction"),
    "too-few-entries": (422, "ledger-too-few-entries", "Too few entries"),
    "currency-mismatch": (422, "ledger-currency-mismatch", "Currencies do not balance"),
    "account-not-found": (404, "ledger-account-not-found", "Account not found"),
    "transaction-not-found": (404, "ledger-transaction-not-found", "Transaction not found"),
    "duplicate-code": (409, "ledger-duplicate-code", "Account code already used"),
    "account-not-empty": (409, "ledger-account-not-empty", "Account balance is not zero"),
    "account-closed": (422, "ledger-account-closed", "Account closed"),
    "insufficient-funds": (409, "ledger-insufficient-funds", "Insufficient funds"),
    "idempotency-key-reused": (
        409, "idempotency-key-reused", "Idempotency key reused with another body",
    ),
    "amount-out-of-range": (422, "amount-out-of-range", "Amount out of range"),
    "validation-error": (422, "validation-error", "Validation failed"),
    "batch-rejected": (422, "ledger-batch-rejected", "Atomic batch rejected"),
}  # fmt: skip
POSTED = 201  # a posting, and its replay (the idempotency record keeps 201)


class LedgerProblem(ProblemError):
    """A ledger domain error as a problem; status and type come from ``RULES``."""

    def __init__(self, exc: LedgerError) -> None:
        status, slug, title = RULES[exc.kind]
        errors = [{"field": exc.field, "message": str(exc)}] if exc.field else None
        extra: dict[str, Any] = {}
        if isinstance(exc, BatchRejected):
            status = RULES[exc.first.kind][0]
            extra["results"] = [
                _result(i, o)
                if o is not None and o.exc is not None
                else {"index": i, "status": 424}
                for i, o in enumerate(exc.outcomes)
            ]
        super().__init__(str(exc), errors=errors, **extra)
        self.status, self.type_slug, self.title = status, slug, title


@contextlib.contextmanager
def _problems() -> Iterator[None]:
    """Domain errors of the service call inside become problems."""
    try:
        yield
    except LedgerError as exc:
        raise LedgerProblem(exc) from None


def problem_body(exc: LedgerError) -> dict[str, Any]:
    """The problem document of one refused batch item."""
    status, slug, title = RULES[exc.kind]
    body: dict[str, Any] = {
        "type": "https://tenantry.dev/problems/" + slug,
        "title": title,
        "status": status,
        "detail": str(exc),
    }
    if exc.field:
        body["errors"] = [{"field": exc.field, "message": str(exc)}]
    return body


def _result(index: int, o: Outcome) -> dict[str, Any]:
    """One batch item's entry in ``results``."""
    if o.exc is not None:
        body = problem_body(o.exc)
        return {"index": index, "status": body["status"], "error": body}
    out: dict[str, Any] = {"index": index, "status": POSTED}
    if o.transaction is not None:
        out["transaction"] = o.transaction
        out["replayed"] = o.replayed
    return out


def _failed_dependency(index: int) -> dict[str, Any]:
    """An atomic batch's item refused only because another item was."""
    return {"index": index, "status": 424}


def _posted_response(outcome: Outcome) -> JsonResponse:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JsonResponse(outcome.transaction, status_code=POSTED, headers=headers)


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


def build_router(service: LedgerService[Any]) -> APIRouter:
    router = APIRouter(tags=["ledger"])

    # -- accounts ---------------------------------------------------------------------------
    @router.post("/accounts", status_code=201, openapi_extra=problems_extra(409))
    async def create_account(body: AccountIn, _: CanWrite) -> JsonResponse:
        with _problems():
            row = await service.create_account(
                body.code, body.name, body.type, body.currency, body.allow_negative, body.metadata
            )
        return JsonResponse(row, status_code=201)

    @router.get("/accounts")
    async def list_accounts(_: CanRead, q: AccountList) -> JsonResponse:
        items, nxt = await service.accounts(*q)
        return JsonResponse({"items": items, "next_cursor": nxt})

    @router.post("/accounts/search")
    async def search_accounts(_: CanRead, q: AccountSearch) -> JsonResponse:
        items, nxt = await service.accounts(*q)
        return JsonResponse({"items": items, "next_cursor": nxt})

    @router.get("/accounts/{account_id:uuid}")
    async def get_account(account_id: UUID, _: CanRead) -> JsonResponse:
        with _problems():
            return JsonResponse(await service.account(account_id))

    @router.post("/accounts/{account_id:uuid}/close", openapi_extra=problems_extra(409))
    async def close_account(account_id: UUID, _: CanWrite) -> JsonResponse:
        with _problems():
            return JsonResponse(await service.close_account(account_id))

    @router.get("/accounts/{account_id:uuid}/balance")
    async def balance(
        account_id: UUID, _: CanRead, as_of: Annotated[datetime | None, Query()] = None
    ) -> JsonResponse:
        with _problems():
            return JsonResponse(await service.balance(account_id, as_of))

    @router.get("/accounts/{account_id:uuid}/entries")
    async def entries(account_id: UUID, _: CanRead, q: EntryList) -> JsonResponse:
        with _problems():
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
        with _problems():
            return _posted_response(await service.post_one(key, _draft(body)))

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
        with _problems():
            outcomes = await service.post_many(items, atomic=body.atomic)
        results = [_result(i, o) for i, o in enumerate(outcomes)]
        accepted = sum(1 for o in outcomes if o.exc is None)
        return JsonResponse(
            {"accepted": accepted, "refused": len(outcomes) - accepted, "results": results}
        )

    @router.get("/transactions")
    async def list_transactions(_: CanRead, q: TransactionList) -> JsonResponse:
        items, nxt = await service.transactions(*q)
        return JsonResponse({"items": items, "next_cursor": nxt})

    @router.post("/transactions/search")
    async def search_transactions(_: CanRead, q: TransactionSearch) -> JsonResponse:
        items, nxt = await service.transactions(*q)
        return JsonResponse({"items": items, "next_cursor": nxt})

    @router.get("/transactions/{transaction_id:uuid}")
    async def get_transaction(transaction_id: UUID, _: CanRead) -> JsonResponse:
        with _problems():
            return JsonResponse(await service.transaction(transaction_id))

    @router.post(
        "/transactions/{transaction_id:uuid}/reverse",
        status_code=201,
        openapi_extra=problems_extra(409),
    )
    async def reverse(
        transaction_id: UUID, _: CanWrite, body: ReverseIn | None = None
    ) -> JsonResponse:
        with _problems():
            outcome = await service.reverse(transaction_id, body.description if body else None)
        return _posted_response(outcome)

    return router


__all__ = ["RULES", "LedgerProblem", "build_router", "problem_body"]
