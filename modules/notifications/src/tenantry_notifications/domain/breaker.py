"""A circuit breaker per endpoint: ``threshold`` consecutive failures open it for
``cooldown_s``; then one trial call is let through (half-open): success closes it, failure
opens it again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class CircuitOpen(Exception):
    """The endpoint failed too often recently; not called."""


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None


class CircuitBreaker:
    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float]) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._states: dict[str, _State] = {}

    def check(self, key: str) -> None:
        """Raise CircuitOpen if ``key`` must not be called now."""
        st = self._states.get(key)
        if st is None or st.opened_at is None:
            return
        if self.clock() - st.opened_at < self.cooldown_s:
            raise CircuitOpen(f"circuit open for {key}")
        st.opened_at = self.clock()  # half-open: this caller is the trial; others wait

    def success(self, key: str) -> None:
        self._states.pop(key, None)

    def failure(self, key: str) -> None:
        st = self._states.setdefault(key, _State())
        st.failures += 1
        if st.failures >= self.threshold:
            st.opened_at = self.clock()

    def is_open(self, key: str) -> bool:
        st = self._states.get(key)
        return bool(st and st.opened_at is not None)
