"""The platform's exception hierarchy.

Every error a client can cause maps to an RFC 9457 problem (see ``kernel.http.problems``):
the ``type`` slug, HTTP status and title live on the class, the detail on the instance.
"""

from __future__ import annotations

from typing import Any


class TenantryError(Exception):
    """Base of every error the platform raises on purpose."""


class ConfigError(TenantryError):
    """The configuration is invalid; the message lists every bad value. ``problems``: one
    line per bad key, each naming the key and where it came from (file, variable)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) if problems else [message]


class ModuleLoadError(TenantryError):
    """A module could not be loaded: missing dependency, cycle, bad entry point."""


class MigrationError(TenantryError):
    """A migration failed for one or more stores."""


class SelfCheckError(TenantryError):
    """The database is not safe to serve from (RLS missing, role can bypass RLS...)."""


class NoTenantContext(TenantryError):
    """A tenant unit of work was opened without a tenant in context."""


class ProblemError(TenantryError):
    """An error that is shown to the client as application/problem+json."""

    status: int = 400
    type_slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


class BadRequest(ProblemError):
    status, type_slug, title = 400, "bad-request", "Bad request"


class IdempotencyKeyMissing(BadRequest):
    type_slug, title = "idempotency-key-missing", "Idempotency-Key header required"


class IdempotencyKeyInvalid(BadRequest):
    type_slug, title = "idempotency-key-invalid", "Invalid Idempotency-Key header"


class Unauthorized(ProblemError):
    status, type_slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str = "Authentication required", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(ProblemError):
    status, type_slug, title = 403, "forbidden", "Forbidden"


class TenantSuspended(Forbidden):
    type_slug, title = "tenant-suspended", "Tenant suspended"


class NotFound(ProblemError):
    status, type_slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, type_slug, title = 409, "conflict", "Conflict"


class ValidationFailed(ProblemError):
    status, type_slug, title = 422, "validation-error", "Validation failed"


class InvalidValue(ValidationFailed):
    """A value no part of the platform can hold (a NUL character, a lone surrogate, a number
    or date-time out of range): refused at the edge (kernel/http/input_guard)."""

    type_slug, title = "invalid-value", "Invalid value"


class ServiceUnavailable(ProblemError):
    status, type_slug, title = 503, "unavailable", "Service unavailable"
