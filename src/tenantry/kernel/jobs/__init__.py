"""Background jobs and schedules on PostgreSQL (``FOR UPDATE SKIP LOCKED``), per tenant."""

from tenantry.kernel.jobs.runner import (
    JobCancelled,
    JobContext,
    JobHandler,
    JobRunner,
    JobsSettings,
    PermanentJobError,
)

__all__ = [
    "JobCancelled",
    "JobContext",
    "JobHandler",
    "JobRunner",
    "JobsSettings",
    "PermanentJobError",
]
