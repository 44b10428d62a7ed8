"""The backfill function's settings: the sweep's, plus the pacing that keeps live callouts first."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from nrtsync.domain.settings import EnvSettings
from nrtsync.services.backfill.step import Pacing
from nrtsync.services.sweep.settings import SweepSettings


class BackfillPacingSettings(EnvSettings):
    """The bounds that pause a backfill (docs/ZUORA.md, "Initial load and replay"); the one place of their
    defaults, for the function and for a run the CLI steps itself."""

    # 2,000 = 10 full sync batches of 200: a live callout queued behind the backfill waits for at most that.
    max_queue_backlog: int = Field(alias="BACKFILL_MAX_QUEUE_BACKLOG", default=2_000, ge=10, le=1_000_000)
    # Below the sync's ApiUsageBudgetPercent (95 by default), so the backfill gives way before the sync must stop.
    max_api_usage_percent: float = Field(alias="BACKFILL_MAX_API_USAGE_PERCENT", default=80.0, ge=1, le=100)
    wait_seconds: int = Field(alias="BACKFILL_WAIT_SECONDS", default=60, ge=1, le=3_600)
    # A reading older than this does not pause the run (see Pacing.usage_max_age).
    api_usage_max_age_seconds: int = Field(alias="BACKFILL_API_USAGE_MAX_AGE_SECONDS", default=1_800, ge=60, le=86_400)

    def pacing(self) -> Pacing:
        return Pacing(
            max_backlog=self.max_queue_backlog,
            max_api_percent=self.max_api_usage_percent,
            wait_seconds=self.wait_seconds,
            usage_max_age=timedelta(seconds=self.api_usage_max_age_seconds),
        )


class BackfillSettings(SweepSettings, BackfillPacingSettings):
    """What the backfill function needs: a sweep's settings and the pacing that keeps live callouts first."""
