"""Users, memberships, roles and API clients as values, and the rules on them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

#: No white space or control characters anywhere (spelled out: ``\\s`` alone differs between
#: Python and the ECMA regexes of JSON Schema on U+001C-U+001F and U+0085).
_ADDR = r"[^@\s\x00-\x20\x7f-\xa0]"
EMAIL_RE = re.compile(rf"^{_ADDR}{{1,64}}@{_ADDR}{{1,255}}\.{_ADDR}{{2,63}}$")
ROLE_RE = re.compile(r"^[a-z][a-z0-9_.:-]{0,62}$")
MIN_PASSWORD = 12
ADMIN_ROLE = "admin"


class DomainError(ValueError):
    """A rule of the identity domain was broken; the message is safe to show."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Status(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise DomainError("email", "not a valid e-mail address")
    return email


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise DomainError("password", f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise DomainError("password", "a password has at most 1024 characters")
    return password


def check_role_names(roles: list[str]) -> list[str]:
    for r in roles:
        if not ROLE_RE.match(r):
            raise DomainError("roles", f"invalid role name {r!r}")
    return sorted(set(roles))


@dataclass(frozen=True, slots=True)
class Member:
    user_id: UUID
    email: str
    roles: list[str]
    status: Status
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiClient:
    id: UUID
    client_id: str
    name: str
    roles: list[str]
    status: Status
    created_at: datetime
