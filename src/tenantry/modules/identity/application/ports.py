"""What the identity use cases need from the outside world."""

from __future__ import annotations

from typing import Protocol


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Verify; with ``hashed`` None, spend the same time and return False."""
        ...
