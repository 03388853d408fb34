"""The in-process L1: a bounded LRU of decoded values, per (tenant, key), with expiry."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any
from uuid import UUID

_MISSING = object()


class L1:
    def __init__(self, size: int, ttl_s: float) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._d: OrderedDict[tuple[UUID, str], tuple[Any, float, tuple[str, ...]]] = OrderedDict()

    def get(self, tenant: UUID, key: str) -> Any:
        """The value, or ``MISSING``."""
        k = (tenant, key)
        item = self._d.get(k)
        if item is None:
            return _MISSING
        if item[1] < time.monotonic():
            del self._d[k]
            return _MISSING
        self._d.move_to_end(k)
        return item[0]

    def put(
        self, tenant: UUID, key: str, value: Any, ttl_s: float | None, tags: tuple[str, ...]
    ) -> None:
        if self.size <= 0:
            return
        ttl = self.ttl_s if ttl_s is None else min(ttl_s, self.ttl_s)
        k = (tenant, key)
        self._d[k] = (value, time.monotonic() + ttl, tags)
        self._d.move_to_end(k)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def drop(self, tenant: UUID, key: str) -> None:
        self._d.pop((tenant, key), None)

    def drop_tag(self, tenant: UUID, tag: str) -> None:
        for k in [k for k, v in self._d.items() if k[0] == tenant and tag in v[2]]:
            del self._d[k]

    def drop_tenant(self, tenant: UUID) -> None:
        for k in [k for k in self._d if k[0] == tenant]:
            del self._d[k]

    def clear(self) -> None:
        self._d.clear()

    def __len__(self) -> int:
        return len(self._d)


MISSING = _MISSING
