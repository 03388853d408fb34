"""JWT signing keys (in the database), token issuing and verification."""

from tenantry.kernel.auth.keys import Keyring
from tenantry.kernel.auth.tokens import TokenError, TokenService

__all__ = ["Keyring", "TokenError", "TokenService"]
