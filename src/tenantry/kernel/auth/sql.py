"""Named SQL of the kernel's authentication parts (platform tables): the platform secret and
the signing keys (kernel/auth/keys).

The platform secret's statements name its table, they hold no secret (ruff's S105 goes by the
constant's name).
"""

from __future__ import annotations

SELECT_PLATFORM_SECRET = "SELECT value FROM tenantry.platform_secrets WHERE name = $1"  # noqa: S105
INSERT_PLATFORM_SECRET = """
INSERT INTO tenantry.platform_secrets (name, value) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
"""  # noqa: S105

# -- signing keys --------------------------------------------------------------------------
SELECT_KEYS = """
SELECT kid, alg, private_pem, public_jwk, created_at, retired_at
FROM tenantry.signing_keys
WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
ORDER BY created_at DESC
"""
# The first key (``tenantry migrate``), on an owner connection.
INSERT_KEY = """
INSERT INTO tenantry.signing_keys (kid, alg, private_pem, public_jwk) VALUES ($1, $2, $3, $4)
"""
LOCK = "SELECT pg_advisory_xact_lock(hashtext('tenantry.keys'))"
HAS_ACTIVE = "SELECT EXISTS (SELECT 1 FROM tenantry.signing_keys WHERE retired_at IS NULL)"
# A rotation, by the application role in the unit of work that audits it: the function
# (migrations/platform/0003) inserts the key and retires the others; returns their kids.
ROTATE = "SELECT tenantry.rotate_signing_key($1, $2, $3, $4)"
