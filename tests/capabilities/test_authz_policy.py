"""The decision rules, pure: RBAC, ABAC conditions, deny by default, unknown actions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tenantry.capabilities.authz.conditions import ConditionError, evaluate, validate
from tenantry.capabilities.authz.policy import Policy, PolicySet, Resource

KNOWN = ["ledger:read", "ledger:write", "ledger:approve", "identity:admin"]
SMALL_OWN_DEPT = {
    "all": [
        {"attr": "resource.amount", "op": "lt", "value": 10_000},
        {"attr": "resource.department", "op": "eq", "ref": "principal.department"},
    ]
}


def expand(actions: Sequence[str]) -> list[str]:
    out = set()
    for a in actions:
        out |= {k for k in KNOWN if a == "*" or (a.endswith(":*") and k.startswith(a[:-1]))}
        if a in KNOWN:
            out.add(a)
    return sorted(out)


def policy_set(*policies: Policy) -> PolicySet:
    return PolicySet(
        {"admin": ["*"], "clerk": ["ledger:read", "ledger:write"], "approver": []},
        list(policies),
        {"u-sales": {"department": "sales"}, "u-ops": {"department": "ops"}},
        expand,
        KNOWN,
    )


def test_rbac_and_deny_by_default() -> None:
    ps = policy_set()
    d = ps.decide("u", "user", frozenset({"clerk"}), "ledger:write", None)
    assert d.allowed
    assert d.policy == "role:clerk"
    d = ps.decide("u", "user", frozenset({"clerk"}), "identity:admin", None)
    assert not d.allowed
    assert d.policy == "default:deny"
    assert ps.decide("u", "user", frozenset({"admin"}), "identity:admin", None).allowed
    assert not ps.decide("u", "user", frozenset(), "ledger:read", None).allowed
    d = ps.decide("u", "user", frozenset({"admin"}), "ledger:delete-everything", None)
    assert not d.allowed
    assert d.policy == "default:unknown-action"


def test_approve_below_10000_in_own_department() -> None:
    ps = policy_set(
        Policy(
            "small-own-dept", "allow", ("ledger:approve",), frozenset({"approver"}), SMALL_OWN_DEPT
        )
    )
    approver = frozenset({"approver"})

    def approve(subject: str, amount: object, dept: str) -> bool:
        res = Resource("transaction", "t1", {"amount": amount, "department": dept})
        return ps.decide(subject, "user", approver, "ledger:approve", res).allowed

    assert approve("u-sales", 9_999, "sales")
    assert not approve("u-sales", 10_000, "sales")
    assert not approve("u-sales", 5, "ops")
    assert approve("u-ops", 5, "ops")
    assert not approve("u-nobody", 5, "sales")  # no department attribute: no match
    assert not approve("u-sales", "5", "sales")  # incomparable types never match
    clerk = ps.decide(
        "u-sales",
        "user",
        frozenset({"clerk"}),
        "ledger:approve",
        Resource("transaction", "t1", {"amount": 1, "department": "sales"}),
    )
    assert not clerk.allowed  # the policy is for approvers only


def test_deny_policies_win_over_roles() -> None:
    ps = policy_set(
        Policy(
            "no-big-writes",
            "deny",
            ("ledger:*",),
            frozenset(),
            {"attr": "resource.amount", "op": "gte", "value": 1_000_000},
            source="platform",
        )
    )
    big = Resource("transaction", None, {"amount": 2_000_000})
    d = ps.decide("u", "user", frozenset({"admin"}), "ledger:write", big)
    assert not d.allowed
    assert d.policy == "platform-policy:no-big-writes"
    assert ps.decide(
        "u",
        "user",
        frozenset({"admin"}),
        "ledger:write",
        Resource("transaction", None, {"amount": 5}),
    ).allowed


def _nested_nots(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"attr": "action", "op": "exists"}
    for _ in range(depth):
        node = {"not": node}
    return node


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"all": []},
        {"attr": "resource.x", "op": "like", "value": 1},
        {"attr": "tenant_id", "op": "eq", "value": 1},
        {"attr": "resource.x", "op": "eq"},
        {"attr": "resource.x", "op": "in", "value": 3},
        {"not": {"attr": "resource.x", "op": "eq", "value": 1}, "extra": 1},
        {"attr": "resource.x", "op": {}, "value": 1},  # an unhashable op was a 500
        _nested_nots(40),  # deeper than MAX_DEPTH
        {"any": [{"attr": "action", "op": "exists"}] * 1001},  # more than MAX_NODES
    ],
)
def test_malformed_conditions_are_refused(bad: object) -> None:
    with pytest.raises(ConditionError):
        validate(bad)


def test_condition_operators() -> None:
    ctx = {"principal": {"tags": ["a", "b"], "level": 3}, "resource": {"k": "x"}, "action": "z"}
    assert evaluate({"attr": "principal.tags", "op": "contains", "value": "a"}, ctx)
    assert evaluate({"attr": "resource.k", "op": "in", "value": ["x", "y"]}, ctx)
    assert evaluate({"not": {"attr": "resource.missing", "op": "exists"}}, ctx)
    assert evaluate(
        {
            "any": [
                {"attr": "principal.level", "op": "gt", "value": 5},
                {"attr": "action", "op": "eq", "value": "z"},
            ]
        },
        ctx,
    )
    assert not evaluate({"attr": "principal.level", "op": "ne", "value": 3}, ctx)


@pytest.mark.parametrize("operator", [False, True])
def test_platform_actions_only_from_the_operator_tenants_roles(operator: bool) -> None:
    """Even with an expansion that keeps them and rules that name them, a platform action is
    granted only to the operator tenant, only by a role (or an operator's default policy)."""
    known = [*KNOWN, "platform:admin"]

    def keep_all(actions: Sequence[str]) -> list[str]:
        return [
            k for k in known if any(a == "*" or a in (k, k.split(":")[0] + ":*") for a in actions)
        ]

    ps = PolicySet(
        {"admin": ["*"], "ops": ["platform:admin"], "nobody": []},
        [
            Policy("tenant-star", "allow", ("*",)),
            Policy("tenant-platform", "allow", ("platform:*",), frozenset({"nobody"})),
        ],
        {"u": {"scopes": ["platform:admin"]}},
        keep_all,
        known,
        operator_tenant=operator,
    )
    for roles in ({"admin"}, {"ops"}):
        d = ps.decide("u", "user", frozenset(roles), "platform:admin", None)
        assert d.allowed is operator, (roles, d)
        if not operator:
            assert d.policy == "default:platform-action"
    # tenant policies never grant it, not even in the operator tenant; they still grant the
    # tenant's own actions (``*``)
    d = ps.decide("u", "user", frozenset({"nobody"}), "platform:admin", None)
    assert not d.allowed
    assert ps.decide("u", "user", frozenset({"nobody"}), "ledger:write", None).allowed
    # an operator's default policy (config) grants it in the operator tenant only
    ps = PolicySet(
        {},
        [Policy("oncall", "allow", ("platform:admin",), source="platform")],
        {},
        keep_all,
        known,
        operator_tenant=operator,
    )
    assert ps.decide("u", "user", frozenset(), "platform:admin", None).allowed is operator
