"""The sync function's settings (its circuit-breaker probe included)."""

from __future__ import annotations

from pydantic import Field

from nrtsync.domain.settings import EnvSettings


class SyncSettings(EnvSettings):
    """What the sync function needs."""

    queue_url: str = Field(alias="CALLOUT_QUEUE_URL", min_length=1)
    state_table: str = Field(alias="SYNC_STATE_TABLE", min_length=1)
    history_table: str = Field(alias="SYNC_HISTORY_TABLE", min_length=1)
    salesforce_secret_id: str = Field(alias="SALESFORCE_SECRET_ID", min_length=1)
    salesforce_api_version: str = Field(alias="SALESFORCE_API_VERSION", default="62.0", pattern=r"^\d{2,3}\.0$")
    salesforce_timeout_seconds: float = Field(alias="SALESFORCE_TIMEOUT_SECONDS", default=20.0, gt=0, le=120)
    api_usage_warn_percent: float = Field(alias="API_USAGE_WARN_PERCENT", default=90.0, gt=0, le=100)
    api_usage_budget_percent: float = Field(alias="API_USAGE_BUDGET_PERCENT", default=95.0, gt=0, le=100)
    api_usage_recheck_seconds: int = Field(alias="API_USAGE_RECHECK_SECONDS", default=60, ge=1, le=3_600)
    retry_delay_seconds: int = Field(alias="RETRY_DELAY_SECONDS", default=5, ge=0, le=900)
    parent_wait_max_tries: int = Field(alias="PARENT_WAIT_MAX_TRIES", default=8, ge=1, le=100)
    history_ttl_days: int = Field(alias="HISTORY_TTL_DAYS", default=30, ge=1, le=3_650)
    secret_max_age_seconds: int = Field(alias="SECRET_CACHE_SECONDS", default=300, ge=0, le=3_600)
    mapping_path: str | None = Field(alias="SYNC_MAPPING_PATH", default=None)
    # Where a dateTime merge field rendered without an offset is local time (Zuora's tenant time zone).
    tenant_time_zone: str = Field(alias="ZUORA_TENANT_TIME_ZONE", default="America/Los_Angeles")
    # Read only for two different changes of a record with one UpdatedDate (services/sync/same_second.py); without
    # it, or with the secret not filled in, such a record is marked for the next reconcile run instead.
    zuora_secret_id: str | None = Field(alias="ZUORA_SECRET_ID", default=None)
    # The circuit breaker: consecutive failed Salesforce calls (across invocations) that open it; the mapping
    # it disables is this function's (Lambda sets AWS_LAMBDA_FUNCTION_NAME) on the callout queue.
    breaker_failure_threshold: int = Field(alias="BREAKER_FAILURE_THRESHOLD", default=5, ge=1, le=100)
    function_name: str | None = Field(alias="AWS_LAMBDA_FUNCTION_NAME", default=None)
    queue_arn: str | None = Field(alias="CALLOUT_QUEUE_ARN", default=None)
