"""Shared capabilities every module uses (filtering, pagination, cache, authz, export, ...).

Capabilities may import the kernel, never a module (import-linter enforces both directions).
"""
