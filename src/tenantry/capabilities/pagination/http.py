"""FastAPI dependencies: a list route's query string or search body -> ``ListQuery``.

    @router.get("/users")
    async def list_users(q: Annotated[ListQuery, Depends(list_query(USERS))]) -> dict[str, Any]:
        async with platform.db.unit_of_work() as uow:
            return await q.fetch_page(uow, LIST_USERS_SQL, serialize=user_json)

``GET ...?filter=<JSON document>&sort=field,-other&limit=N&cursor=...`` and
``POST .../search`` with ``{"filters": [...], "sort": ..., "limit": N, "cursor": "..."}``
produce the same object. Unparseable JSON is a 400, an invalid document a 422, a bad cursor a
404 (``invalid-cursor``). The OpenAPI document describes each list's document exactly
(``capabilities.filtering.schema``). Cursors are signed with a key derived from the platform
secret and scoped to the list and the tenant in context.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations,
# which refer to per-list descriptions (closure variables) that only exist at definition time.

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import orjson
from fastapi import Body, Query, Request

from tenantry.capabilities.filtering.document import DEFAULT_LIMITS, Limits
from tenantry.capabilities.filtering.fields import FieldSet
from tenantry.capabilities.filtering.schema import (
    document_schemas,
    filter_name,
    search_name,
    sort_pattern,
)
from tenantry.capabilities.pagination.cursor import CursorSigner
from tenantry.capabilities.pagination.query import DEFAULT_LIMIT, MAX_LIMIT, ListQuery
from tenantry.kernel.errors import BadRequest, InvalidValue
from tenantry.kernel.http.input_guard import BadValue, check_value
from tenantry.kernel.http.openapi import EXTRA_KEY, documents
from tenantry.kernel.tenancy.context import current_tenant

CURSOR_KEY_PURPOSE = "tenantry.pagination.cursor"


async def cursor_signer(request: Request) -> CursorSigner:
    """The signer of the platform serving ``request`` (its secrets, derived per purpose)."""
    platform = request.app.state.platform
    key: bytes = await platform.secrets.derive(CURSOR_KEY_PURPOSE)
    return CursorSigner(key)


def _scope() -> str:
    tenant = current_tenant()
    return str(tenant.id) if tenant else "-"


def parse_json(raw: str | bytes, where: str = "filter") -> Any:
    """JSON (through orjson, so numbers are floats: decimals beyond 15 significant digits
    belong in strings); a 400 problem when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(
            f"the {where} is not valid JSON",
            errors=[{"field": where, "message": "not valid JSON"}],
        ) from None


def parse_filter_param(raw: str | None) -> Any:
    if raw is None or raw.strip() == "":
        return None
    doc = parse_json(raw)
    try:
        # A JSON document inside a query parameter: the input guard sees only its text.
        check_value(doc, "filter")
    except BadValue as exc:
        raise InvalidValue(str(exc), errors=[{"field": exc.where, "message": exc.reason}]) from None
    return doc


def describe(fieldset: FieldSet) -> tuple[str, str]:
    """OpenAPI descriptions of the ``filter`` and ``sort`` parameters of a list."""
    lines = [
        f"`{f.name}` ({f.type.value}): {', '.join(sorted(f.ops))}"
        for f in fieldset.by_name.values()
        if f.ops and (f is not fieldset.id or f.sortable)
    ]
    filter_doc = (
        'JSON filter document, e.g. {"filters": [{"field": ..., "op": ..., "value": ...}]} '
        "with and/or/not nesting. Fields and ops: " + "; ".join(lines)
    )
    sortable = [f.name for f in fieldset.by_name.values() if f.sortable or f is fieldset.id]
    sort_doc = (
        f"comma-separated, '-' for descending; sortable: {', '.join(sortable)}; "
        f"default: {fieldset.default_sort or fieldset.id.name}"
    )
    return filter_doc, sort_doc


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def document_list(
    fieldset: FieldSet, limits: Limits = DEFAULT_LIMITS, top_level: Sequence[dict[str, Any]] = ()
) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """The OpenAPI rewrite of a ``GET`` list: ``filter`` is a JSON document of this list's
    fields (``capabilities.filtering.schema``), ``sort`` a pattern of its sortable fields."""

    def rewrite(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
        schemas.update(document_schemas(fieldset, limits, MAX_LIMIT, top_level=top_level))
        operation[EXTRA_KEY] = [*operation.get(EXTRA_KEY, ()), 404]  # invalid cursor
        for param in operation.get("parameters", ()):
            if param.get("in") != "query":
                continue
            if param["name"] == "filter":
                param.pop("schema", None)
                param["content"] = {"application/json": {"schema": _ref(filter_name(fieldset))}}
            elif param["name"] == "sort":
                param["schema"] = {
                    "type": "string",
                    "maxLength": 200,
                    "pattern": sort_pattern(fieldset, limits),
                }

    return rewrite


def document_search(
    fieldset: FieldSet, limits: Limits = DEFAULT_LIMITS, top_level: Sequence[dict[str, Any]] = ()
) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """The OpenAPI rewrite of a ``POST .../search``: the body is this list's search document."""

    def rewrite(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
        schemas.update(document_schemas(fieldset, limits, MAX_LIMIT, top_level=top_level))
        operation[EXTRA_KEY] = [*operation.get(EXTRA_KEY, ()), 404]  # invalid cursor
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            body["schema"] = {"anyOf": [_ref(search_name(fieldset)), {"type": "null"}]}

    return rewrite


def list_query(
    fieldset: FieldSet, *, limits: Limits = DEFAULT_LIMITS
) -> Callable[..., Awaitable[ListQuery]]:
    """Dependency for ``GET`` list routes (query-string parameters)."""
    filter_doc, sort_doc = describe(fieldset)

    @documents(document_list(fieldset, limits))
    async def dependency(
        request: Request,
        filter_: Annotated[
            str | None,
            # no max_length: the document's own limits bound it (conditions, depth, lists)
            Query(alias="filter", description=filter_doc),
        ] = None,
        sort: Annotated[str | None, Query(max_length=200, description=sort_doc)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        # no max_length here: an overlong cursor is a malformed one, a 400 like the others
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> ListQuery:
        return ListQuery.parse(
            fieldset,
            await cursor_signer(request),
            document=parse_filter_param(filter_),
            sort=sort,
            limit=limit,
            cursor=cursor,
            scope=_scope(),
            limits=limits,
        )

    return dependency


def search_query(
    fieldset: FieldSet, *, limits: Limits = DEFAULT_LIMITS
) -> Callable[..., Awaitable[ListQuery]]:
    """Dependency for ``POST .../search`` routes (the document, limit and cursor in the body)."""

    @documents(document_search(fieldset, limits))
    async def dependency(
        request: Request,
        body: Annotated[
            dict[str, Any] | None,
            Body(
                description="filter document plus optional limit and cursor",
                examples=[
                    {
                        "filters": [{"field": "created_at", "op": "gte", "value": "2026-01-01"}],
                        "sort": {"field": "created_at", "dir": "desc"},
                        "limit": 50,
                    }
                ],
            ),
        ] = None,
    ) -> ListQuery:
        doc = dict(body or {})
        limit = doc.pop("limit", DEFAULT_LIMIT)
        cursor = doc.pop("cursor", None)
        return ListQuery.parse(
            fieldset,
            await cursor_signer(request),
            document=doc,
            limit=limit,
            cursor=cursor,
            scope=_scope(),
            limits=limits,
        )

    return dependency
