"""Error hooks: what the HTTP error handler, the message relay/consumer and the job runner call
on a failure (error tracking plugs in there). A hook reports on a failure; it must never add
one, so each is called in turn and one that raises is logged and skipped."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["ErrorHook", "call_hooks"]

_log = logging.getLogger("tenantry.hooks")

#: ``(exc, context)``: the failure and what it happened to (consumer, message, job, tenant...).
ErrorHook = Callable[[BaseException, dict[str, Any]], object]


def call_hooks(hooks: Iterable[Callable[..., object]], *args: Any, what: str) -> None:
    """Call every hook with ``args``; a failing hook is logged (``what`` names the caller)."""
    for hook in hooks:
        try:
            hook(*args)
        except Exception:
            _log.warning("%s hook %r failed", what, hook, exc_info=True)
