"""Shared capabilities: services every module can use (cache, authz, export, ...)."""
