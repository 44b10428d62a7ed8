"""The backfill function's settings: the sweep's, plus the pacing that keeps live callouts first."""

from __future__ import annotations

from pydantic import Field

from nrtsync.services.sweep.settings import SweepSettings


class BackfillSettings(SweepSettings):
    """What the backfill function needs: a sweep's settings and the pacing that keeps live callouts first
    (``nrtsync.services.backfill.step.Pacing``; docs/ZUORA.md, "Initial load and replay")."""

    # 2,000 = 10 full sync batches of 200: a live callout queued behind the backfill waits for at most that.
    max_queue_backlog: int = Field(alias="BACKFILL_MAX_QUEUE_BACKLOG", default=2_000, ge=10, le=1_000_000)
    # Below the sync's ApiUsageBudgetPercent (95 by default), so the backfill gives way before the sync must stop.
    max_api_usage_percent: float = Field(alias="BACKFILL_MAX_API_USAGE_PERCENT", default=80.0, ge=1, le=100)
    wait_seconds: int = Field(alias="BACKFILL_WAIT_SECONDS", default=60, ge=1, le=3_600)
    api_usage_max_age_seconds: int = Field(alias="BACKFILL_API_USAGE_MAX_AGE_SECONDS", default=1_800, ge=60, le=86_400)
