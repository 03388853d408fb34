"""RFC 9457 problem details for every error, never a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tenantry.kernel.db.errors import DRIVER_ERRORS, database_unavailable
from tenantry.kernel.errors import ProblemError
from tenantry.kernel.hooks import call_hooks

_log = logging.getLogger("tenantry.http")
PROBLEM_TYPE_BASE = "https://tenantry.dev/problems/"
MEDIA_TYPE = "application/problem+json"


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    request_id: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _rid(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


async def _problem_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status,
        exc.type_slug,
        exc.title,
        exc.detail,
        request_id=_rid(request),
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def _allowed_methods(request: Request) -> str:
    """Every method of every route at the request's path (FastAPI has one route per method, and
    Starlette's 405 names only the first one's); routes with a literal path shadow templates."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    literal: set[str] = set()
    templated: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            fixed = "{" not in str(getattr(route, "path_format", "{"))
            (literal if fixed else templated).update(route.methods or ())
    # ``/flags/mine`` is its own resource, not ``/flags/{name}`` with name "mine": a literal
    # path names the methods of its resource alone (as the OpenAPI document lists them)
    return ", ".join(sorted(literal or templated))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    slug = phrase.lower().replace(" ", "-")
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    return problem_response(
        exc.status_code,
        slug,
        phrase,
        detail,
        request_id=_rid(request),
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        errors.append(
            {
                "field": ".".join(loc[1:]) or ".".join(loc),
                "in": loc[0] if loc else None,
                "message": err.get("msg", "invalid"),
            }
        )
    body_errors = [e for e in exc.errors() if e.get("type") == "json_invalid"]
    if body_errors:
        return problem_response(
            400,
            "malformed-body",
            "Malformed request body",
            "the request body is not valid JSON",
            request_id=_rid(request),
        )
    return problem_response(
        422,
        "validation-error",
        "Validation failed",
        "the request has invalid fields",
        request_id=_rid(request),
        errors=errors,
    )


#: SQLSTATEs only a client's value causes (a character the encoding cannot hold, a number or
#: date-time beyond its type): a 422, should a value pass the input guard and a route.
_CLIENT_VALUE_SQLSTATES = frozenset({"22021", "22P05", "22003", "22008"})


def _client_value_error(exc: Exception) -> bool:
    """asyncpg's error for a value the server or its codecs refuse (not a code error)."""
    if not isinstance(exc, asyncpg.DataError):
        return False
    if getattr(exc, "sqlstate", None) in _CLIENT_VALUE_SQLSTATES:
        return True
    # Client-side encoding of an argument: a datetime that overflows in UTC, a lone surrogate.
    return isinstance(exc.__cause__, OverflowError | UnicodeEncodeError)


#: Seconds a client is told to wait when the database is unreachable: the pools reconnect on
#: the next acquire, so a retry a second later usually succeeds.
DATABASE_RETRY_AFTER_S = 1


def database_unavailable_response(request_id: str | None) -> Response:
    """``503 database-unavailable`` with ``Retry-After``: the database could not be reached or
    the connection was lost mid-request (kernel/db/errors); nothing is wrong with the request,
    and a write that got this answer was not committed unless the COMMIT itself was cut
    (retry with the same ``Idempotency-Key`` where the route takes one)."""
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    if request_id:
        headers["X-Request-Id"] = request_id
    return problem_response(
        503,
        "database-unavailable",
        "Database unavailable",
        "the database connection was lost or could not be opened; retry shortly",
        request_id=request_id,
        headers=headers,
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    """Driver and socket errors raised by a route: 503 for a lost database, 422 for a value the
    database refused; anything else goes on to ``_unhandled`` (a 500)."""
    if database_unavailable(exc):
        _log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return database_unavailable_response(_rid(request))
    if _client_value_error(exc):
        return await _unhandled(request, exc)
    raise exc


async def _unhandled(request: Request, exc: Exception) -> Response:
    rid = _rid(request)
    if database_unavailable(exc):
        # Raised outside the routes (a middleware's catalog or principal lookup).
        _log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return database_unavailable_response(rid)
    if _client_value_error(exc):
        _log.warning("value refused by the database on %s: %s", request.url.path, exc)
        return problem_response(
            422,
            "invalid-value",
            "Invalid value",
            "a value is out of range or holds a character that cannot be stored",
            request_id=rid,
            headers={"X-Request-Id": rid} if rid else None,
        )
    _log.exception("unhandled error on %s %s", request.method, request.url.path)
    platform = getattr(request.app.state, "platform", None)
    call_hooks(getattr(platform, "unhandled_hooks", ()), request, exc, what="unhandled-error")
    return problem_response(
        500,
        "internal-error",
        "Internal server error",
        "an unexpected error occurred; quote the request id to support",
        request_id=rid,
        # This handler runs outside the request-context middleware, which adds it elsewhere.
        headers={"X-Request-Id": rid} if rid else None,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for cls in DRIVER_ERRORS:
        app.add_exception_handler(cls, _database_error)
    app.add_exception_handler(Exception, _unhandled)
