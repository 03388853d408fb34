"""The decision: RBAC roles of a tenant plus ABAC policies, deny by default. Pure Python.

Order: an unknown action is denied; a platform action (``platform:*``) outside the operator
tenant is denied (``default:platform-action``), whatever the tenant's roles, policies or
attributes say; a matching ``deny`` policy (platform default or tenant) wins; else a role of
the principal that grants the action allows; else a matching ``allow`` policy allows (a
tenant policy never allows a platform action, not even in the operator tenant); else deny.
Every decision names what decided it. See kernel/auth/actions.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenantry.capabilities.authz.conditions import evaluate
from tenantry.kernel.auth.actions import is_platform_action, without_platform_actions


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy: str  # what decided: "role:admin", "policy:<name>", "default:deny", ...
    action: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    effect: str  # "allow" | "deny"
    actions: tuple[str, ...]
    roles: frozenset[str] = frozenset()  # empty: any principal
    condition: Mapping[str, Any] | None = None
    source: str = "tenant"  # "tenant" | "platform"

    @property
    def label(self) -> str:
        return f"{'platform-policy' if self.source == 'platform' else 'policy'}:{self.name}"

    def applies(self, roles: frozenset[str], ctx: Mapping[str, Any]) -> bool:
        if self.roles and not (self.roles & roles):
            return False
        return self.condition is None or evaluate(self.condition, ctx)


@dataclass(frozen=True, slots=True)
class Resource:
    """What is acted on: a type, an id, and attributes ABAC conditions can read."""

    type: str
    id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.type}:{self.id}" if self.id is not None else self.type


def _index(policies: Iterable[Policy]) -> tuple[dict[str, list[Policy]], list[Policy]]:
    exact: dict[str, list[Policy]] = {}
    patterns: list[Policy] = []
    for p in policies:
        if any(a == "*" or a.endswith(":*") for a in p.actions):
            patterns.append(p)
        for a in p.actions:
            if a != "*" and not a.endswith(":*"):
                exact.setdefault(a, []).append(p)
    return exact, patterns


def _pattern_matches(p: Policy, action: str) -> bool:
    return any(a == "*" or (a.endswith(":*") and action.startswith(a[:-1])) for a in p.actions)


class PolicySet:
    """One tenant's compiled rules: role -> granted actions, policies indexed by action."""

    def __init__(
        self,
        roles: Mapping[str, Sequence[str]],
        policies: Sequence[Policy],
        attributes: Mapping[str, Mapping[str, Any]],
        expand: Callable[[Sequence[str]], Sequence[str]],
        known_actions: Iterable[str],
        *,
        operator_tenant: bool = False,
    ) -> None:
        #: Only the operator tenant's roles may grant platform actions.
        self.operator_tenant = operator_tenant
        keep: Callable[[Iterable[str]], Iterable[str]] = (
            (lambda a: a) if operator_tenant else without_platform_actions
        )
        self.grants = {name: frozenset(keep(expand(actions))) for name, actions in roles.items()}
        self.attributes = attributes
        self.known = frozenset(known_actions)
        self._exact, self._patterns = _index(policies)
        self.size = sum(len(a) for a in roles.values()) + len(policies)

    def _policies(self, action: str) -> list[Policy]:
        found = list(self._exact.get(action, ()))
        found += [p for p in self._patterns if _pattern_matches(p, action)]
        return found

    def decide(
        self,
        subject: str,
        kind: str,
        roles: frozenset[str],
        action: str,
        resource: Resource | None,
    ) -> Decision:
        if action not in self.known:
            return Decision(False, "default:unknown-action", action)
        platform_action = is_platform_action(action)
        if platform_action and not self.operator_tenant:
            return Decision(False, "default:platform-action", action)
        candidates = self._policies(action)
        ctx: dict[str, Any] | None = None
        if candidates:
            ctx = {
                "principal": {
                    **self.attributes.get(subject, {}),
                    "subject": subject,
                    "kind": kind,
                    "roles": sorted(roles),
                },
                "resource": (
                    {**resource.attributes, "type": resource.type, "id": resource.id}
                    if resource
                    else {}
                ),
                "action": action,
            }
            for p in candidates:
                if p.effect == "deny" and p.applies(roles, ctx):
                    return Decision(False, p.label, action)
        for r in roles:
            granted = self.grants.get(r)
            if granted is not None and action in granted:
                return Decision(True, f"role:{r}", action)
        if ctx is not None:
            for p in candidates:
                if platform_action and p.source != "platform":
                    continue  # tenant policies never grant platform actions
                if p.effect == "allow" and p.applies(roles, ctx):
                    return Decision(True, p.label, action)
        return Decision(False, "default:deny", action)
