"""Identity: platform identity, memberships, roles, API clients, OAuth2 tokens."""
