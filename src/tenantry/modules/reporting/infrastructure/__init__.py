"""Reporting SQL."""
