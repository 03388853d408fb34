"""What every ``tenantry`` command needs, the kernel's own plugins included: the settings as
the global options give them (``--config``, ``--log-format``), ``run`` (build the platform, run
a coroutine, close), and the two consoles.

``tenantry.cli`` (the application's entry point) sets ``state`` from its global options and
uses these; CLI plugins (entry points ``tenantry.cli``) import them from here, never from
``tenantry.cli`` (an import-linter contract forbids the kernel that edge).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from tenantry.kernel.config import Settings, load_settings
from tenantry.kernel.platform import Platform

T = TypeVar("T")

console = Console()
err = Console(stderr=True)


class CliState:
    """The global options of the command line being run."""

    def __init__(self) -> None:
        self.config: Path | None = None
        self.log_format: str | None = None
        self.debug: bool = False


state = CliState()


def settings(**overrides: Any) -> Settings:
    """The settings: the config file of ``--config`` (or ``$TENANTRY_CONFIG``), the
    environment, ``--log-format``, then ``overrides``."""
    if state.log_format:
        overrides.setdefault("logging", {"format": state.log_format})
    return load_settings(state.config, **overrides)


def run(fn: Callable[[Platform], Awaitable[T]], cfg: Settings | None = None) -> T:
    """Build the platform, run ``fn``, close (errors are reported by ``tenantry.cli.main``)."""

    async def go() -> T:
        platform = Platform.build(cfg or settings())
        try:
            return await fn(platform)
        finally:
            await platform.close()

    return asyncio.run(go())
