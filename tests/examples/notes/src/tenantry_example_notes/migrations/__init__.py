"""Migrations of the example module."""
