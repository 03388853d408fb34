"""The edge's value rules, without HTTP (kernel/http/input_guard)."""

from __future__ import annotations

from typing import Any

import pytest

from tenantry.kernel.http.input_guard import (
    BadValue,
    _json_hinted,
    check_json_body,
    check_query,
    check_value,
)


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
        b'{"n": 100000000000e9}',  # 1e20 with a one-digit exponent
        b'{"n": [1, -9.3E+18]}',
        b"1e19",  # the body's end ends the number
        b'{"n":\t9223372036854775808\n}',
    ],
)
def test_json_bodies(body: bytes) -> None:
    with pytest.raises(BadValue):
        check_json_body(body)


def test_json_without_hints_is_not_parsed_and_malformed_json_is_left_to_the_route() -> None:
    check_json_body(b'{"amount": 100, "name": "plain"}')
    check_json_body(b'{"broken": "\\u0000')  # not JSON: the route answers 400


@pytest.mark.parametrize(
    "body",
    [
        # hex digits around an "e" look like an exponent to a byte-level test: never parsed
        b'{"account_id": "5b3e4567-8f3c-4c41-a1f4-4c4f8b9b1a01", "amount": 12500}',
        b'{"ids": ["0c7d1b9e-2d6b-4a3e-9b8e-6c2a5f0e9d02", "a1e99"], "key": "k-3e45"}',
        b'{"n": 1.5, "m": -42, "s": "12345678"}',
    ],
)
def test_bodies_of_ids_and_small_numbers_are_not_parsed(body: bytes) -> None:
    assert not _json_hinted(body)


@pytest.mark.parametrize(
    "body", [b'{"n": 1e3}', b'{"n": 1.0E-5}', b"[0.5e+1]", b'{"big": 1234567890123456789}']
)
def test_numbers_with_an_exponent_or_19_digits_are_parsed(body: bytes) -> None:
    assert _json_hinted(body)
    check_json_body(body)  # parsed, and in range


def test_query_strings_and_forms() -> None:
    with pytest.raises(BadValue):
        check_query(b"tenant=al%00pha", "form")
    with pytest.raises(BadValue):
        check_query(b"as_of=0001-01-01T00:00:00%2B14:00", "query")
    check_query(b"as_of=0001-01-01T00:00:00Z&limit=10", "query")
