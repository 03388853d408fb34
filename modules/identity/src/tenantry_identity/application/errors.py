"""Identity's refusals as domain errors (``IdentityError`` kinds), with no HTTP in them:
routes.py maps each kind to the status, problem type and body clients have always seen.

``InvalidCredentials`` carries no cause: an unknown tenant, an unknown or disabled user, a
wrong password or secret all raise the same error with the same message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

BAD_CREDENTIALS = "invalid credentials"


class IdentityError(Exception):
    """A refusal of an identity use case; the message is safe to show. ``errors``: the
    per-field details (``{"field": ..., "message": ...}``), when there are any."""

    kind: ClassVar[str] = "invalid"

    def __init__(self, message: str, errors: Sequence[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors) if errors is not None else None


class InvalidCredentials(IdentityError):
    """Authentication failed, whatever the cause (never told apart). ``grant``: which grant
    failed (``password`` or ``client_credentials``)."""

    kind = "invalid-credentials"

    def __init__(self, grant: str) -> None:
        super().__init__(BAD_CREDENTIALS)
        self.grant = grant


class InvalidInput(IdentityError):
    """A value breaks a rule (an e-mail, a password, a role name, an unknown action)."""

    kind = "invalid"


class PlatformGrantRefused(IdentityError):
    """Outside the operator tenant a role cannot grant a platform action (nor ``*`` or
    ``platform:*``); ``grants``: what was asked, ``field``: where."""

    kind = "platform-action"

    def __init__(self, grants: Sequence[str], field: str = "actions") -> None:
        super().__init__("platform actions cannot be granted by a tenant")
        self.grants = list(grants)
        self.field = field


class NotFound(IdentityError):
    """Something named does not exist in this tenant (a member, a client, a role, a login),
    or a reference to something the tenant does not have (unknown roles)."""

    kind = "not-found"


class Conflict(IdentityError):
    """The change contradicts the current state (already a member, the admin role, locking
    yourself out, a role name taken)."""

    kind = "conflict"


__all__ = [
    "BAD_CREDENTIALS",
    "Conflict",
    "IdentityError",
    "InvalidCredentials",
    "InvalidInput",
    "NotFound",
    "PlatformGrantRefused",
]
