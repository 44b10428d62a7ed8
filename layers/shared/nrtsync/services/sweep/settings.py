"""What every sweep (reconciliation and the backfill) is configured with."""

from __future__ import annotations

from pydantic import Field

from nrtsync.domain.settings import EnvSettings


# Each function's settings, read once per container (``cache_clear`` re-reads them, for tests).
class SweepSettings(EnvSettings):
    """What every sweep of Zuora's records needs (reconciliation and backfill extend it)."""

    queue_url: str = Field(alias="CALLOUT_QUEUE_URL", min_length=1)
    state_table: str = Field(alias="SYNC_STATE_TABLE", min_length=1)
    zuora_secret_id: str = Field(alias="ZUORA_SECRET_ID", min_length=1)
    secret_max_age_seconds: int = Field(alias="SECRET_CACHE_SECONDS", default=300, ge=0, le=3_600)
    mapping_path: str | None = Field(alias="SYNC_MAPPING_PATH", default=None)
