"""Notification use cases: event handlers."""
