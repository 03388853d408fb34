"""SMTP, HTTP and SQL adapters."""
