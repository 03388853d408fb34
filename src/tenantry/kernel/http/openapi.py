"""The OpenAPI document says what the server answers, errors included.

FastAPI documents the success response of each route and a 422 of its own shape
(``HTTPValidationError``, ``application/json``). Every error this server sends is an RFC 9457
problem (``application/problem+json``, ``kernel.http.problems``), and most of them come from
layers FastAPI does not see: the request-context middleware (401 bad token, 403 suspended
tenant), the rate limiter (429), the plan gate (403 not-entitled), the database layer (503).
So the document is completed here, once, when it is first built, for every operation of every
router, new ones included without anyone remembering to:

- every operation: 401, 403, 429, 503;
- with a query, header or cookie parameter or a body: 400 and 422; with a path parameter: 404
  and 422;
- what a route's dependencies declare (``declares``: ``entitlements.require`` -> 402), and
  what the route itself declares with ``problems_extra(409, 410)`` in ``openapi_extra``;

each as ``application/problem+json`` with the ``Problem`` schema (FastAPI's own 422 entry and
its ``HTTPValidationError`` schemas are replaced). ``$defs`` left inside a schema by a route
that documents its body itself (``model_json_schema()`` in ``openapi_extra``) are moved to
``components/schemas``, where their ``$ref``\\ s can resolve. The permissions an operation's
``require()`` dependencies check are listed under ``x-tenantry-permissions``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from tenantry.kernel.http.problems import MEDIA_TYPE

#: ``openapi_extra`` key a route lists its own extra problem statuses under (removed from the
#: document once read).
EXTRA_KEY = "x-tenantry-problems"
#: Attribute a dependency carries to declare the problem statuses it can answer.
DEPENDENCY_ATTR = "__tenantry_problems__"
#: Attribute ``require(action)``'s dependency carries: the permission it checks. Each
#: operation lists what its dependencies require under ``x-tenantry-permissions``.
PERMISSION_ATTR = "__tenantry_permission__"
PERMISSIONS_KEY = "x-tenantry-permissions"

ALWAYS = frozenset({401, 403, 429, 503})
WITH_INPUT = frozenset({400, 422})
WITH_PATH = frozenset({404, 422})

PROBLEM_REF = "#/components/schemas/Problem"
SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 9457 problem details; more members may follow (e.g. `required`, "
        "`limit`, `plan`).",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/ProblemFieldError"},
            },
        },
        "additionalProperties": True,
    },
    "ProblemFieldError": {
        "title": "ProblemFieldError",
        "description": "One invalid field: where (`field`, `in`) and why (`message`).",
        "type": "object",
        "properties": {
            "field": {"type": "string"},
            "in": {"type": ["string", "null"]},
            "message": {"type": "string"},
        },
        "additionalProperties": True,
    },
}
#: Shapes FastAPI adds for its own 422 entry, unused once that entry is a problem.
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: body or parameter that is not valid JSON, bad cursor or "
    "Idempotency-Key",
    401: "Missing, invalid or expired bearer token",
    402: "The plan's quota is reached (`quota-exceeded`)",
    403: "Not permitted: missing permission, tenant suspended, not in the plan",
    404: "No such resource (in this tenant)",
    409: "Conflicts with the current state",
    410: "Gone",
    422: "Invalid fields (`errors` names them)",
    429: "Rate limit reached (`Retry-After`)",
    503: "Temporarily unavailable (`Retry-After`)",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "string"},
    }
}

F = TypeVar("F", bound=Callable[..., Any])


def declares(*statuses: int) -> Callable[[F], F]:
    """Mark a dependency as one that can answer these problem statuses: every route that
    depends on it (directly or through other dependencies) declares them."""

    def mark(fn: F) -> F:
        setattr(fn, DEPENDENCY_ATTR, (*getattr(fn, DEPENDENCY_ATTR, ()), *statuses))
        return fn

    return mark


def problems_extra(*statuses: int, **openapi_extra: Any) -> dict[str, Any]:
    """``openapi_extra`` for a route that can answer more than the defaults::

    @router.post("/roles", openapi_extra=problems_extra(409))
    """
    return {**openapi_extra, EXTRA_KEY: sorted(statuses)}


def problem_response(status: int) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    response: dict[str, Any] = {
        "description": DESCRIPTIONS.get(status, phrase),
        "content": {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response


def _dependency_statuses(dependant: Dependant) -> Iterator[int]:
    for sub in dependant.dependencies:
        yield from getattr(sub.call, DEPENDENCY_ATTR, ())
        yield from _dependency_statuses(sub)


def required_permissions(dependant: Dependant) -> set[str]:
    """The permissions ``require()`` dependencies of ``dependant`` check (sub-dependencies and
    the including routers' dependencies included)."""
    found: set[str] = set()
    for sub in dependant.dependencies:
        action = getattr(sub.call, PERMISSION_ATTR, None)
        if isinstance(action, str):
            found.add(action)
        found |= required_permissions(sub)
    return found


def operation_statuses(operation: dict[str, Any], route: Any) -> set[int]:
    """The problem statuses an operation can answer (see the module docstring)."""
    statuses = set(ALWAYS)
    where = {p.get("in") for p in operation.get("parameters", ())}
    if "requestBody" in operation or where & {"query", "header", "cookie"}:
        statuses |= WITH_INPUT
    if "path" in where:
        statuses |= WITH_PATH
    statuses.update(operation.pop(EXTRA_KEY, ()))
    if route is not None:
        statuses.update(_dependency_statuses(route.dependant))
    return statuses


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> Any:
    """Move ``$defs`` found below ``node`` to ``schemas`` (components) and point their
    ``$ref``\\ s there; a name already taken by a different schema gets a suffix."""
    if isinstance(node, list):
        return [_hoist_defs(v, schemas) for v in node]
    if not isinstance(node, dict):
        return node
    renames: dict[str, str] = {}
    for name, schema in (node.pop("$defs", None) or {}).items():
        target, n = name, 1
        while target in schemas and schemas[target] != schema:
            n += 1
            target = f"{name}{n}"
        renames[name] = target
        schemas[target] = schema
    out = {k: _hoist_defs(v, schemas) for k, v in node.items()}
    for target in renames.values():
        schemas[target] = _hoist_defs(schemas[target], schemas)
    for name, target in renames.items():
        old, new = f"#/$defs/{name}", f"#/components/schemas/{target}"
        _rewrite_refs(out, old, new)
        for hoisted in renames.values():
            _rewrite_refs(schemas[hoisted], old, new)
    return out


def _rewrite_refs(node: Any, old: str, new: str) -> None:
    if isinstance(node, list):
        for v in node:
            _rewrite_refs(v, old, new)
    elif isinstance(node, dict):
        if node.get("$ref") == old:
            node["$ref"] = new
        for v in node.values():
            _rewrite_refs(v, old, new)


def _uses(node: Any, ref: str) -> bool:
    if isinstance(node, list):
        return any(_uses(v, ref) for v in node)
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_uses(v, ref) for v in node.values())
    return False


def _routes_by_operation(routes: Iterable[BaseRoute]) -> dict[tuple[str, str], Any]:
    """(path, method) -> the route as served (FastAPI keeps included routers as one route:
    ``iter_route_contexts`` gives each route with its router's prefix and dependencies)."""
    found: dict[tuple[str, str], Any] = {}
    for context in iter_route_contexts(list(routes)):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            for method in context.methods or ():
                found[(str(context.path_format), method.lower())] = context
    return found


def complete(document: dict[str, Any], routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """Add the problem responses to every operation of ``document`` (in place)."""
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    by_operation = _routes_by_operation(routes)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            route = by_operation.get((path, method))
            for status in sorted(operation_statuses(operation, route)):
                responses[str(status)] = problem_response(status)
            permissions = required_permissions(route.dependant) if route is not None else set()
            if permissions:
                operation[PERMISSIONS_KEY] = sorted(permissions)
    document["paths"] = _hoist_defs(document.get("paths", {}), schemas)
    rest = {k: v for k, v in document.items() if k != "components"}
    for name in FASTAPI_VALIDATION_SCHEMAS:
        ref = f"#/components/schemas/{name}"
        others = {k: v for k, v in schemas.items() if k not in FASTAPI_VALIDATION_SCHEMAS}
        if name in schemas and not _uses(rest, ref) and not _uses(others, ref):
            del schemas[name]
    schemas.update(SCHEMAS)
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (built once, on first use)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
