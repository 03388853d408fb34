"""Export fixtures: the test source, a temporary storage root, a worker that runs what is due."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenantry.capabilities.export.service import ExportService
from tenantry.capabilities.export.storage import LocalStorage
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform
from tests.export import fixtures


@pytest.fixture(scope="module")
async def export_service(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> ExportService:
    async with admin_connection(platform.db, as_owner=False) as conn:
        for stmt in fixtures.schema_sql(platform.settings.database.app_user):
            await conn.execute(stmt)
    fixtures.register(platform)
    service = platform.use(ExportService)
    assert isinstance(service, ExportService)
    service.storage = LocalStorage(tmp_path_factory.mktemp("exports"))
    return service


@pytest.fixture
def storage_root(export_service: ExportService) -> Path:
    assert isinstance(export_service.storage, LocalStorage)
    return export_service.storage.root
