"""Child processes against the test database: the ``tenantry`` command, or any process that
builds its own platform (cache peers, workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tenantry.kernel.config import Settings

EXE = str(Path(sys.executable).with_name("tenantry"))


def database_toml(settings: Settings, pool_max: int) -> str:
    """The ``[database]`` section of a config file for a ``tenantry`` process on the test's
    database (the servers and commands the crash and worker tests start)."""
    d = settings.database
    return f"""[database]
url = "{d.url}"
app_user = "{d.app_user}"
app_password = "{d.app_password}"
owner_role = "{d.owner_role}"
pool_max = {pool_max}
"""


def process_env(settings: Settings) -> dict[str, str]:
    """This process's environment plus what points a child at the test database and roles."""
    s = settings.database
    return {
        **os.environ,
        "DATABASE_URL": s.url or "",
        "TENANTRY_DATABASE__APP_USER": s.app_user,
        "TENANTRY_DATABASE__APP_PASSWORD": s.app_password,
        "TENANTRY_DATABASE__OWNER_ROLE": s.owner_role,
    }


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``tenantry`` command against the test database, as an operator would."""
    return subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        env=process_env(settings),
        timeout=120,
        check=False,
    )
