"""Running the `tenantry` command in capability tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tenantry.kernel.config import Settings

EXE = str(Path(sys.executable).with_name("tenantry"))


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``tenantry`` command against the test database, as an operator would."""
    s = settings.database
    env = {
        **os.environ,
        "DATABASE_URL": s.url or "",
        "TENANTRY_DATABASE__APP_USER": s.app_user,
        "TENANTRY_DATABASE__APP_PASSWORD": s.app_password,
        "TENANTRY_DATABASE__OWNER_ROLE": s.owner_role,
    }
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
