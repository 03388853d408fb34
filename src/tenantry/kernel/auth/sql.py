"""Named SQL of the kernel's authentication parts (platform tables).

The platform secret's statements name its table, they hold no secret (ruff's S105 goes by the
constant's name).
"""

from __future__ import annotations

SELECT_PLATFORM_SECRET = "SELECT value FROM tenantry.platform_secrets WHERE name = $1"  # noqa: S105
INSERT_PLATFORM_SECRET = """
INSERT INTO tenantry.platform_secrets (name, value) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
"""  # noqa: S105
