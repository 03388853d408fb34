"""Which actions belong to the platform, and which grants would reach one.

Platform actions (the ``platform:`` namespace; today ``platform:admin``: onboarding tenants,
plans and overrides of every tenant, feature flags, SLOs, platform errors) operate the whole
platform. The rule, used at write time by every tenant-writable authorization surface and at
decision time by the authz engine and the token scope expansion:

- only the operator tenant (``tenancy.operator_tenant``) can hold a platform action, and only
  through its roles (or the operator's own configured default policies), never through a
  tenant policy;
- in any other tenant nothing grants one: not a role, a policy, an attribute, nor a wildcard
  (``*`` and ``platform:*`` match platform actions; ``ledger:*`` does not).

Grants are written as roles and policies write them: an action (``ledger:write``), every
action (``*``) or a namespace (``ledger:*``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tenantry.kernel.errors import ValidationFailed

PLATFORM_NAMESPACE = "platform"
_PREFIX = PLATFORM_NAMESPACE + ":"
#: Platform-wide operations (tenant onboarding, plans, flags, error and SLO views). Only the
#: operator tenant (``tenancy.operator_tenant``) can hold it, through its roles; nothing any
#: other tenant writes grants it. The one definition: everything else imports it.
PLATFORM_ADMIN = _PREFIX + "admin"


class PlatformActionRefused(ValidationFailed):
    """A tenant tried to grant (or store) a platform action: 422, ``errors`` name each."""

    type_slug, title = "platform-action", "Platform actions cannot be granted by a tenant"


def is_platform_action(action: str) -> bool:
    """``action`` is in the platform's namespace (``platform:...``)."""
    return action == PLATFORM_NAMESPACE or action.startswith(_PREFIX)


def grants_platform_action(grant: str) -> bool:
    """Would ``grant`` (an action, ``*`` or a ``namespace:*`` pattern) match a platform action?
    Any trailing-``*`` pattern whose stem is a prefix of ``platform:`` counts (``*``, ``p*``,
    ``plat*``, ``platform:*``), as does anything inside the namespace (``platform:x:*``)."""
    if is_platform_action(grant):
        return True
    return grant.endswith("*") and _PREFIX.startswith(grant[:-1])


def platform_grants(grants: Iterable[str]) -> list[str]:
    """The grants among ``grants`` that would reach a platform action, in order."""
    return [g for g in grants if grants_platform_action(g)]


def without_platform_actions(actions: Iterable[str]) -> set[str]:
    return {a for a in actions if not is_platform_action(a)}


def refuse_platform_grants(grants: Sequence[str], *, field: str = "actions") -> None:
    """Raise ``PlatformActionRefused`` (422) naming each grant that reaches a platform action
    (``<field>.<index>``); a tenant-writable surface calls it before it writes anything."""
    _raise(
        [
            {
                "field": _join(field, i),
                "action": g,
                "message": f"{g!r} "
                + (
                    "is a platform action"
                    if is_platform_action(g)
                    else "would match platform actions (name the namespaces, e.g. 'ledger:*')"
                )
                + ": only the operator tenant's roles grant platform actions",
            }
            for i, g in enumerate(grants)
            if grants_platform_action(g)
        ]
    )


def refuse_platform_names(value: Any, *, field: str = "") -> None:
    """Raise ``PlatformActionRefused`` if any string in ``value`` (a JSON document: nested
    objects and lists, keys included) names a platform action: tenant data such as principal
    attributes never carries one."""
    errors: list[dict[str, Any]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, str):
            if is_platform_action(node):
                message = f"{node!r} is a platform action: tenant data cannot name one"
                errors.append({"field": where, "action": node, "message": message})
        elif isinstance(node, Mapping):
            for k, v in node.items():
                walk(k, _join(where, k))
                walk(v, _join(where, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, _join(where, i))

    walk(value, field)
    _raise(errors)


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _raise(errors: list[dict[str, Any]]) -> None:
    if errors:
        named = ", ".join(dict.fromkeys(repr(e["action"]) for e in errors))
        raise PlatformActionRefused(
            f"platform actions cannot be granted by a tenant: {named}", errors=errors
        )


def tenant_grants(known: Iterable[str]) -> list[str]:
    """What a tenant may grant, for the OpenAPI document: the declared actions outside the
    platform namespace and ``<namespace>:*`` for their namespaces (the operator tenant may
    also grant platform actions, ``*`` and ``platform:*``; other ``x:*`` patterns are
    accepted as well, matching nothing until a module declares ``x``)."""
    actions = sorted({a for a in known if not grants_platform_action(a)})
    spaces = sorted({a.split(":", 1)[0] + ":*" for a in actions if ":" in a})
    return [*actions, *spaces]
