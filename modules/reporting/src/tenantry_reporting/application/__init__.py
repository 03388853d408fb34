"""Reporting use cases: event handlers and queries."""
