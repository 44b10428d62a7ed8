"""The metrics function's settings."""

from __future__ import annotations

from pydantic import Field

from nrtsync.domain.settings import EnvSettings


class MetricsSettings(EnvSettings):
    """What the metrics function needs."""

    history_table: str = Field(alias="SYNC_HISTORY_TABLE", min_length=1)
    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)
    state_table: str = Field(alias="SYNC_STATE_TABLE", min_length=1)
    # A closed hour is rolled up this long after it ends: longer than the sync function's 60 s timeout,
    # so no late writer adds to a minute once its hour is rolled.
    rollup_lag_minutes: int = Field(alias="ROLLUP_LAG_MINUTES", default=15, ge=2, le=120)
    rollup_max_hours_per_run: int = Field(alias="ROLLUP_MAX_HOURS_PER_RUN", default=6, ge=1, le=168)
    # Rollups must outlive the 7-day window.
    rollup_ttl_days: int = Field(alias="ROLLUP_TTL_DAYS", default=8, ge=8, le=400)
    # A minute's raw latencies are published once, this long after the minute ends (> the sync timeout).
    distribution_settle_seconds: int = Field(alias="DISTRIBUTION_SETTLE_SECONDS", default=90, ge=61, le=900)
    api_usage_max_age_seconds: int = Field(alias="API_USAGE_MAX_AGE_SECONDS", default=900, ge=60, le=86_400)
    history_read_concurrency: int = Field(alias="HISTORY_READ_CONCURRENCY", default=8, ge=1, le=32)
    # The window metrics (P50/P90/P99, counts) per object type too, not only for All: 44 more custom metrics per
    # object type (4 windows x 11 names), about $53 a month at list price for the 4 default objects. Off by
    # default: the SLO alarms and the dashboard read All; per object type, CloudWatch's own percentiles of the
    # raw distributions (SyncLatency/EndToEndLatency, dimension ObjectType) stay published (docs/METRICS.md).
    window_metrics_by_object_type: bool = Field(alias="WINDOW_METRICS_BY_OBJECT_TYPE", default=False)
