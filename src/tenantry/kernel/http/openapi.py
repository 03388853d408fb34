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
its ``HTTPValidationError`` schemas are replaced). A dependency can also rewrite the operation
it serves (``documents(fn)``: a list's ``filter`` parameter becomes a JSON document with the
list's own fields and ops, its ``sort`` a pattern of the sortable fields).

The input guard's rules (``kernel.http.input_guard``) hold for every request, so they are
written into every schema here (``edge_rules``): strings carry no NUL (a ``pattern`` where the
schema has no pattern, format or enum of its own), numbers lie within the 64-bit integer range,
and free-form JSON (``dict[str, Any]``, ``Any``) is a ``JsonValue`` obeying the same rules.

``$defs`` left inside a schema by a route that documents its body itself
(``model_json_schema()`` in ``openapi_extra``) are moved to ``components/schemas``, where their
``$ref``\\ s can resolve. The permissions an operation's ``require()`` dependencies check are
listed under ``x-tenantry-permissions``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from tenantry.kernel.http.input_guard import INT64_MAX, INT64_MIN
from tenantry.kernel.http.problems import MEDIA_TYPE

#: ``openapi_extra`` key a route lists its own extra problem statuses under (removed from the
#: document once read).
EXTRA_KEY = "x-tenantry-problems"
#: Attribute a dependency carries to declare the problem statuses it can answer.
DEPENDENCY_ATTR = "__tenantry_problems__"
#: Attribute a dependency carries to rewrite the operation it serves (see ``documents``).
DOCUMENTER_ATTR = "__tenantry_documents__"
#: Attribute ``require(action)``'s dependency carries: the permission it checks. Each
#: operation lists what its dependencies require under ``x-tenantry-permissions``.
PERMISSION_ATTR = "__tenantry_permission__"
PERMISSIONS_KEY = "x-tenantry-permissions"

ALWAYS = frozenset({401, 403, 429, 503})
WITH_INPUT = frozenset({400, 422})
WITH_PATH = frozenset({404, 422})

PROBLEM_REF = "#/components/schemas/Problem"
#: ``pattern`` of a string the input guard accepts (no NUL; lone surrogates cannot be sent as
#: UTF-8 at all).
NO_NUL = "^[^\\u0000]*$"
#: A string with something besides white space (names that are stripped), and no NUL.
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"
JSON_VALUE_REF = "#/components/schemas/JsonValue"
SCHEMAS: dict[str, dict[str, Any]] = {
    "JsonValue": {
        "title": "JsonValue",
        "description": "Any JSON value the platform can hold: strings without NUL, numbers "
        "within -2^63..2^63-1 (larger ones as strings), objects and arrays of such values.",
        "anyOf": [
            {"type": "string", "pattern": NO_NUL},
            {"type": "number", "minimum": INT64_MIN, "maximum": INT64_MAX},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": {"$ref": JSON_VALUE_REF}},
            {
                "type": "object",
                "propertyNames": {"pattern": NO_NUL},
                "additionalProperties": {"$ref": JSON_VALUE_REF},
            },
        ],
    },
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
    503: "Temporarily unavailable (`Retry-After`); `database-unavailable` when the database"
    " connection was lost or could not be opened",
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


Documenter = Callable[[dict[str, Any], dict[str, Any]], None]


def documents(documenter: Documenter) -> Callable[[F], F]:
    """Mark a dependency (or a route's endpoint) as one that rewrites the operation of every
    route using it:
    ``documenter(operation, component_schemas)`` is called once when the document is built
    (after FastAPI wrote the operation, before the problem responses are added: it may list
    more under ``operation["x-tenantry-problems"]``)."""

    def mark(fn: F) -> F:
        setattr(fn, DOCUMENTER_ATTR, (*getattr(fn, DOCUMENTER_ATTR, ()), documenter))
        return fn

    return mark


def _documenters(dependant: Dependant) -> Iterator[Documenter]:
    for sub in dependant.dependencies:
        yield from getattr(sub.call, DOCUMENTER_ATTR, ())
        yield from _documenters(sub)


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "not", "if", "then", "else", "contains", "propertyNames")
_OWN_SHAPE = ("pattern", "enum", "const", "format", "$ref")


def _types(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type")
    return {t} if isinstance(t, str) else set(t) if isinstance(t, list) else set()


def edge_rules(schema: Any) -> Any:
    """``schema`` with the input guard's rules written in (see the module docstring); ``{}``
    (any value) becomes a ``JsonValue``."""
    if schema is True or schema == {}:
        return {"$ref": JSON_VALUE_REF}
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    types = _types(out)
    if "string" in types and not any(k in out for k in _OWN_SHAPE):
        out["pattern"] = NO_NUL
    if types & {"integer", "number"}:
        if not isinstance(out.get("minimum"), int | float) or out["minimum"] < INT64_MIN:
            out["minimum"] = INT64_MIN
        if not isinstance(out.get("maximum"), int | float) or out["maximum"] > INT64_MAX:
            out["maximum"] = INT64_MAX
    if "array" in types and "items" not in out and "prefixItems" not in out:
        out["items"] = {"$ref": JSON_VALUE_REF}
    if "object" in types:
        extra = out.get("additionalProperties", True)
        if extra is not False:
            out["additionalProperties"] = edge_rules(extra)
            out.setdefault("propertyNames", {"pattern": NO_NUL})
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: edge_rules(v) for name, v in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [edge_rules(v) for v in out[key]]
    for key in _SCHEMA_ONE:
        if key in out and key != "propertyNames":
            out[key] = edge_rules(out[key])
    return out


def _edge_rules_everywhere(node: Any) -> Any:
    """Apply ``edge_rules`` to every ``schema`` of parameters, bodies and responses."""
    if isinstance(node, list):
        return [_edge_rules_everywhere(v) for v in node]
    if not isinstance(node, dict):
        return node
    return {
        k: edge_rules(v) if k == "schema" else _edge_rules_everywhere(v) for k, v in node.items()
    }


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
    if status == 400:
        # a request that is not valid HTTP (a control character in the target) is refused
        # by the HTTP server itself (uvicorn), in plain text, before any route
        response["content"]["text/plain"] = {"schema": {"type": "string"}}
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
            if route is not None:
                own = getattr(route.dependant.call, DOCUMENTER_ATTR, ())
                for documenter in dict.fromkeys([*own, *_documenters(route.dependant)]):
                    documenter(operation, schemas)
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
    document["paths"] = _edge_rules_everywhere(document["paths"])
    _links(document["paths"])
    for name, schema in schemas.items():
        if name not in SCHEMAS:
            schemas[name] = edge_rules(schema)
    return document


#: Statuses of a POST that created the resource it returns (its body carries the new id).
CREATED = ("201", "202")
_PARAM = re.compile(r"^\{([^}/]+)\}$")


def _links(paths: dict[str, Any]) -> None:
    """OpenAPI links from every creating POST on a collection ``/x`` to the operations on
    ``/x/{param}...``: the new resource's ``id`` (or ``name``, when the path names it by name)
    is that parameter. Clients and stateful testers (schemathesis's stateful phase) follow
    them: create, then read, change or delete what was created."""
    for base, item in paths.items():
        post = item.get("post")
        if not isinstance(post, dict):
            continue
        created = next((c for c in CREATED if c in post.get("responses", {})), None)
        if created is None:
            continue
        links: dict[str, Any] = {}
        for path, other in paths.items():
            rest = path[len(base) + 1 :].split("/") if path.startswith(base + "/") else []
            match = _PARAM.match(rest[0]) if rest else None
            if match is None or any(_PARAM.match(part) for part in rest[1:]):
                continue
            param = match.group(1)
            field = "name" if param == "name" else "id"
            for operation in other.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    links[operation["operationId"]] = {
                        "operationId": operation["operationId"],
                        "parameters": {param: f"$response.body#/{field}"},
                    }
        if links:
            post["responses"][created]["links"] = links


def install(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (built once, on first use)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
