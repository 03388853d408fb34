"""The cache capability: PostgreSQL (UNLOGGED table, RLS, L1 + LISTEN/NOTIFY) or Redis.

Use it from a route or handler as ``platform.use(Cache)`` (in setup: ``registrar.use(Cache)``)::

    balance = await cache.get_or_set(f"balance:{account_id}", load, ttl_s=30, tags=["ledger"])
"""

from tenantry.capabilities.cache.cache import Cache

__all__ = ["Cache"]
