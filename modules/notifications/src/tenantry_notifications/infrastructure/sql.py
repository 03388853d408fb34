"""The notifications module's SQL, as named constants (webhook endpoints and the
notification log, tenant store; the unit of work's tenant filter adds ``tenant_id``)."""

from __future__ import annotations

ENDPOINTS_FOR = """
SELECT id, url, secret FROM webhook_endpoints
WHERE active AND $1 = ANY(events) ORDER BY created_at
"""

ENDPOINT_BY_URL = """
SELECT id, url, secret FROM webhook_endpoints WHERE active AND url = $1
ORDER BY created_at LIMIT 1
"""

INSERT_ENDPOINT = """
INSERT INTO webhook_endpoints (id, url, secret, events) VALUES ($1, $2, $3, $4)
"""

LIST_ENDPOINTS = """
SELECT id, url, events, active, created_at FROM webhook_endpoints ORDER BY created_at LIMIT 500
"""

INSERT_LOG = """
INSERT INTO notification_log (message_id, channel, target, status) VALUES ($1, $2, $3, $4)
"""
