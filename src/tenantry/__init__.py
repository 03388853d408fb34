"""Tenantry: a multi-tenant SaaS platform kernel on PostgreSQL."""

__version__ = "0.1.0"
__all__ = ["__version__"]
