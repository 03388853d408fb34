"""Messaging settings: the ``[messaging]`` table of the config file (declared with the
kernel's other sections in kernel/config.py)."""

from __future__ import annotations

from tenantry.kernel.config import MessagingSettings

__all__ = ["MessagingSettings"]
