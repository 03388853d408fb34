"""A job worker in its own process, for the kill-and-retry test (``python -m``).

argv[1] is JSON: ``settings`` overrides (database, jobs, exports) and the ``storage`` root.
It registers the test sources, as a module's setup would, then works until killed."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tenantry.capabilities.export.service import ExportService
from tenantry.capabilities.export.storage import LocalStorage
from tenantry.kernel.config import load_settings
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tests.export import fixtures


async def main(cfg: dict[str, Any]) -> None:
    platform = Platform.build(load_settings(None, **cfg["settings"]), discover())
    await platform.start(listen=False)
    fixtures.register(platform)
    platform.use(ExportService).storage = LocalStorage(Path(cfg["storage"]))
    stop = asyncio.Event()
    try:
        await platform.jobs.work(stop)
    finally:
        await platform.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
