"""Observability: structured logs, traces, Prometheus metrics, error tracking and SLOs.

Everything lands in PostgreSQL when no other backend is configured: errors (grouped,
fingerprinted, occurrences partitioned by month), per-minute request metrics for SLOs and
error budgets, and optionally spans. ``Platform.observability`` is the entry point; feature
code uses ``capture_exception``, ``tracing.span`` and the collectors in ``metrics``.
"""
