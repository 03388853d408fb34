"""Shared capabilities: services every module uses (authz, audit, rate limits, plans, flags)."""
