"""What the emails say."""

from __future__ import annotations


def welcome(tenant_name: str, slug: str) -> tuple[str, str]:
    return (
        f"Welcome to Tenantry, {tenant_name}",
        f"Your tenant '{slug}' is ready. Sign in with the admin account you were given.\n",
    )


def added_to_tenant(email: str, roles: list[str]) -> tuple[str, str]:
    return (
        "You were added to a Tenantry workspace",
        f"{email} can now sign in; roles: {', '.join(roles) or '(none)'}.\n",
    )


def notice(subject: str, body: dict[str, object]) -> str:
    """The text of a direct notice (e.g. an export that ended): the subject and its fields."""
    lines = [subject, ""] + [f"{k}: {v}" for k, v in body.items() if v is not None]
    return "\n".join(lines) + "\n"


def error_alert(
    error_type: str, message: str, environment: str, occurrences: int, reason: str, group_id: int
) -> tuple[str, str]:
    """An error-tracking notification for operators: a threshold reached or a reopening."""
    why = (
        "was resolved and happened again"
        if reason == "reopened"
        else f"has happened {occurrences} times"
    )
    return (
        f"[{environment}] {error_type}: {message[:120]}",
        f"{error_type}: {message}\n\nThis error {why} in {environment}.\n"
        f"Details: tenantry errors show {group_id}\n",
    )
