"""``[exports]`` settings and per-plan limits.

**Interim.** Plans and entitlements are a capability being built on another branch; until it
lands, limits come from ``[exports.plans.<plan>]`` in the config (defaults below) through one
function, ``limits_for``, which is the only thing to swap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PlanLimits(BaseModel):
    """``[exports.plans.<plan>]``: the export limits of one plan."""

    model_config = ConfigDict(extra="forbid")

    #: Rows one export may hold.
    max_rows: int = Field(default=5_000_000, ge=1)
    #: Bytes one export file may take.
    max_bytes: int = Field(default=2 * 1024**3, ge=1)
    #: Exports of a tenant running at once.
    max_concurrent: int = Field(default=3, ge=1)
    #: PDF is for reading, not bulk: a table of more rows is refused.
    pdf_max_rows: int = Field(default=200_000, ge=1)


DEFAULT_PLANS = {
    "free": PlanLimits(max_rows=100_000, max_bytes=256 * 1024**2, max_concurrent=1),
    "pro": PlanLimits(),
    "enterprise": PlanLimits(max_rows=50_000_000, max_bytes=20 * 1024**3, max_concurrent=10),
}


class ExportSettings(BaseModel):
    """``[exports]``: where export files are written and how long they live."""

    model_config = ConfigDict(extra="forbid")

    #: ``local`` (a folder) or ``s3`` (pip install 'tenantry[s3]'; the usual AWS chain).
    storage: Literal["local", "s3"] = "local"
    #: Root folder of the local storage backend (files at <root>/<tenant>/<export>.<ext>).
    storage_path: Path = Path(".tenantry/exports")
    #: Bucket of the ``s3`` backend.
    s3_bucket: str | None = None
    #: Key prefix of the ``s3`` backend.
    s3_prefix: str = "exports/"
    #: Lifetime of a signed download link.
    link_ttl_s: int = Field(default=900, ge=10, le=7 * 86_400)
    #: How long a finished file is kept before the cleanup job deletes it.
    retention_s: int = Field(default=7 * 86_400, ge=60)
    #: Seconds between progress updates of a running export.
    progress_interval_s: float = Field(default=1.0, gt=0)
    #: Cron of the per-tenant cleanup schedule (UTC).
    cleanup_cron: str = "*/15 * * * *"
    #: Data rows per XLSX sheet (Excel's limit is 1,048,576 rows including the header).
    xlsx_rows_per_sheet: int = Field(default=1_048_575, ge=1, le=1_048_575)
    #: Limits used for a plan ``plans`` does not name.
    default_plan: str = "free"
    #: Limits per plan (until the plans capability carries them).
    plans: dict[str, PlanLimits] = Field(default_factory=lambda: dict(DEFAULT_PLANS))


def limits_for(settings: ExportSettings, plan: str) -> PlanLimits:
    """The export limits of a tenant's plan (unknown plan: the default plan's)."""
    return settings.plans.get(plan) or settings.plans.get(settings.default_plan) or PlanLimits()
