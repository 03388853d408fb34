"""The filter engine: declared fields, a JSON filter document, parameterized SQL.

    from tenantry.capabilities.filtering import FieldSet, fields, compile_document

    where = compile_document(USERS, {"filters": [...]}, offset=1)   # -> .sql, .params

Most routes use it through ``tenantry.capabilities.pagination`` (``list_query``).
"""

from __future__ import annotations

from typing import Any

from tenantry.capabilities.filtering import fields
from tenantry.capabilities.filtering.compiler import CompiledFilter, compile_filter, escape_like
from tenantry.capabilities.filtering.document import (
    DEFAULT_LIMITS,
    And,
    Condition,
    Limits,
    Node,
    Not,
    Or,
    parse_filter,
    parse_sort,
)
from tenantry.capabilities.filtering.fields import Field, FieldSet, SortKey
from tenantry.capabilities.filtering.types import FieldType


def compile_document(
    fieldset: FieldSet, doc: Any, *, offset: int = 0, limits: Limits = DEFAULT_LIMITS
) -> CompiledFilter:
    """Parse, validate and compile the filter part of ``doc`` (422 on any problem)."""
    return compile_filter(parse_filter(doc, fieldset, limits), offset)


__all__ = [
    "DEFAULT_LIMITS",
    "And",
    "CompiledFilter",
    "Condition",
    "Field",
    "FieldSet",
    "FieldType",
    "Limits",
    "Node",
    "Not",
    "Or",
    "SortKey",
    "compile_document",
    "compile_filter",
    "escape_like",
    "fields",
    "parse_filter",
    "parse_sort",
]
