"""The edge's value rules, without HTTP (kernel/http/input_guard)."""

from __future__ import annotations

from typing import Any

import pytest

from tenantry.kernel.http.input_guard import BadValue, check_json_body, check_query, check_value


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": {"b": "x\x00"}}, "a.b"),
        ({"k\x00": 1}, "k\x00 (key)"),
        (["ok", "\udc00"], "[1]"),
        ({"n": 2**63}, "n"),
        ({"n": -(2**63) - 1}, "n"),
        ({"n": float("inf")}, "n"),
        ({"n": float("nan")}, "n"),
        ({"n": 1e19}, "n"),  # every number stays within the 64-bit range, floats too
        ({"n": -1e300}, "n"),
        ({"at": "9999-12-31T23:59:59.999999-23:59"}, "at"),
        ({"at": "0001-01-01T00:00:00+14:00"}, "at"),
    ],
)
def test_refused_values_name_their_field(value: Any, where: str) -> None:
    with pytest.raises(BadValue) as info:
        check_value(value)
    assert info.value.where == where


@pytest.mark.parametrize(
    "value",
    ["naïve \U0001f600", 2**63 - 1, -(2**63), 9.2e18, 1e-300, "0001-01-01T00:00:00Z"],
)
def test_values_in_range_pass(value: Any) -> None:
    check_value({"v": value})


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\u0000"}',
        b'{"a": "\\ud800"}',
        b'{"n": 1e400}',
        b'{"n": NaN}',
        b"[Infinity]",
        b'{"n": 2.5e19}',
    ],
)
def test_json_bodies(body: bytes) -> None:
    with pytest.raises(BadValue):
        check_json_body(body)


def test_json_without_hints_is_not_parsed_and_malformed_json_is_left_to_the_route() -> None:
    check_json_body(b'{"amount": 100, "name": "plain"}')
    check_json_body(b'{"broken": "\\u0000')  # not JSON: the route answers 400


def test_query_strings_and_forms() -> None:
    with pytest.raises(BadValue):
        check_query(b"tenant=al%00pha", "form")
    with pytest.raises(BadValue):
        check_query(b"as_of=0001-01-01T00:00:00%2B14:00", "query")
    check_query(b"as_of=0001-01-01T00:00:00Z&limit=10", "query")
