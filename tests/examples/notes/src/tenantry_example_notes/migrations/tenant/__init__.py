"""Tenant migrations of the example module."""
