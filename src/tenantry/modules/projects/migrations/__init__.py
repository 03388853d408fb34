"""Projects migrations (tenant/)."""
