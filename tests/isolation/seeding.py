"""Seeders give a tenant at least one row in every tenant-owned table, through the real API.

Each kernel part and capability adds a ``seed_<name>.py`` beside this file defining ``async def
seed(client, tenant)``; a module distribution registers its seeder under the entry-point group
``tenantry.isolation_seeds`` (modules/projects: ``tenantry_projects.testing:seed``). Both are
found automatically. The isolation suite fails for any tenant-owned table
that no seeder fills, so a new table cannot slip past it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path

import httpx

from tests.conftest import TenantFixture

Seeder = Callable[[httpx.AsyncClient, TenantFixture], Awaitable[None]]


def seeders() -> list[Seeder]:
    found: list[Seeder] = []
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.startswith("seed_"):
            mod = importlib.import_module(f"tests.isolation.{info.name}")
            found.append(mod.seed)
    for ep in sorted(entry_points(group="tenantry.isolation_seeds"), key=lambda e: e.name):
        found.append(ep.load())
    return found


async def seed_all(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    for seed in seeders():
        await seed(client, tenant)
