"""Webhook endpoints: which events an endpoint may subscribe to, and its secret (pure)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable


class UnknownEvents(ValueError):
    """An endpoint asked for events that are not offered; ``events`` names them."""

    def __init__(self, events: list[str]) -> None:
        super().__init__(f"unknown events {events}")
        self.events = events


def subscribed(events: Iterable[str], offered: Iterable[str]) -> list[str]:
    """The events an endpoint subscribes to (sorted, without repeats), or UnknownEvents."""
    wanted = set(events)
    unknown = sorted(wanted - set(offered))
    if unknown:
        raise UnknownEvents(unknown)
    return sorted(wanted)


def new_secret() -> str:
    """An endpoint's signing secret (shown once, when the endpoint is registered)."""
    return "whsec_" + secrets.token_urlsafe(32)
