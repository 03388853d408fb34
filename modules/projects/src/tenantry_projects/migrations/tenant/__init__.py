"""Tenant migrations of projects."""
