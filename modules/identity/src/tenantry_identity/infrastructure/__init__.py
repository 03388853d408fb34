"""Identity's SQL and crypto adapters."""
