"""Keyset pagination with signed cursors, and the HTTP helpers list routes use.

from tenantry.capabilities.pagination import ListQuery, list_query, search_query
"""

from __future__ import annotations

from tenantry.capabilities.pagination.cursor import CursorSigner
from tenantry.capabilities.pagination.http import (
    cursor_signer,
    list_query,
    parse_filter_param,
    search_query,
)
from tenantry.capabilities.pagination.query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CompiledList,
    Fetcher,
    ListQuery,
)

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CompiledList",
    "CursorSigner",
    "Fetcher",
    "ListQuery",
    "cursor_signer",
    "list_query",
    "parse_filter_param",
    "search_query",
]
