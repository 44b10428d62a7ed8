"""Configuration of each function: one validated model per function, read once from the environment.

Secrets never live here: the settings name the Secrets Manager secret, and the adapters fetch it through
Powertools Parameters with a cache.
"""

from __future__ import annotations

import ipaddress
import os
from functools import cache
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

type IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(RuntimeError):
    """The function's environment is incomplete or invalid; raised at cold start, never per request."""


class _EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Self:
        """Build the settings from environment variables (aliases are the variable names)."""
        source = dict(os.environ if environ is None else environ)
        try:
            return cls.model_validate({k: v for k, v in source.items() if v != ""})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
            )
            raise SettingsError(f"{cls.__name__} is invalid: {problems}") from exc


class IngestSettings(_EnvSettings):
    """What the callout endpoint needs."""

    queue_url: str = Field(alias="CALLOUT_QUEUE_URL", min_length=1)
    callout_secret_id: str = Field(alias="CALLOUT_SECRET_ID", min_length=1)
    max_body_bytes: int = Field(alias="MAX_CALLOUT_BYTES", default=65_536, ge=1_024, le=262_144)
    hmac_header: str = Field(alias="CALLOUT_HMAC_HEADER", default="X-Zuora-Signature", min_length=1)
    auth_realm: str = Field(alias="CALLOUT_AUTH_REALM", default="nrtsync", pattern=r'^[^"\\]+$')
    secret_max_age_seconds: int = Field(alias="SECRET_CACHE_SECONDS", default=300, ge=0, le=3_600)
    mapping_path: str | None = Field(alias="SYNC_MAPPING_PATH", default=None)
    # Comma-separated CIDRs (IPv4 and IPv6) a callout may come from; empty allows every source address.
    allowed_source_cidrs: tuple[IpNetwork, ...] = Field(alias="ALLOWED_SOURCE_CIDRS", default=())

    @field_validator("allowed_source_cidrs", mode="before")
    @classmethod
    def _parse_cidrs(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        networks = []
        for text in (part.strip() for part in value.split(",")):
            if not text:
                continue
            try:
                # strict: a CIDR with host bits set (10.0.0.1/8) is a typo more often than a wish for 10.0.0.0/8.
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                raise ValueError(f"{text!r} is not a CIDR block such as 192.0.2.0/24 or 2001:db8::/32: {exc}") from exc
        return tuple(networks)


class AuthorizerSettings(_EnvSettings):
    """What the callout API's Lambda authorizer needs: the callout secret, nothing else."""

    callout_secret_id: str = Field(alias="CALLOUT_SECRET_ID", min_length=1)
    secret_max_age_seconds: int = Field(alias="SECRET_CACHE_SECONDS", default=300, ge=0, le=3_600)


class SyncSettings(_EnvSettings):
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
    # The circuit breaker: consecutive failed Salesforce calls (across invocations) that open it; the mapping
    # it disables is this function's (Lambda sets AWS_LAMBDA_FUNCTION_NAME) on the callout queue.
    breaker_failure_threshold: int = Field(alias="BREAKER_FAILURE_THRESHOLD", default=5, ge=1, le=100)
    function_name: str | None = Field(alias="AWS_LAMBDA_FUNCTION_NAME", default=None)
    queue_arn: str | None = Field(alias="CALLOUT_QUEUE_ARN", default=None)


class MetricsSettings(_EnvSettings):
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


# Each function's settings, read once per container (``cache_clear`` re-reads them, for tests).
class SweepSettings(_EnvSettings):
    """What every sweep of Zuora's records needs (reconciliation and backfill extend it)."""

    queue_url: str = Field(alias="CALLOUT_QUEUE_URL", min_length=1)
    state_table: str = Field(alias="SYNC_STATE_TABLE", min_length=1)
    zuora_secret_id: str = Field(alias="ZUORA_SECRET_ID", min_length=1)
    secret_max_age_seconds: int = Field(alias="SECRET_CACHE_SECONDS", default=300, ge=0, le=3_600)
    mapping_path: str | None = Field(alias="SYNC_MAPPING_PATH", default=None)


class ReconcileSettings(SweepSettings):
    """What the scheduled reconciliation needs on top of a sweep's settings (docs/ZUORA.md, "Reconciliation")."""

    # Each window starts this long before the last window's end: a record saved while the last sweep ran can
    # carry an UpdatedDate inside that window yet reach the query only later (commit time, Zuora's own clocks).
    # Reading it again is cheap: records Salesforce already has are compared in the state table, not queued.
    overlap_seconds: int = Field(alias="RECONCILE_OVERLAP_SECONDS", default=300, ge=0, le=3_600)
    # Each window ends this long before now, so a change whose callout is still on its way (Zuora sends it
    # within seconds, the sync writes it within a minute) is left to the callout rather than queued twice.
    settle_seconds: int = Field(alias="RECONCILE_SETTLE_SECONDS", default=120, ge=0, le=3_600)
    # The first run ever (no watermark) reads this far back; a whole tenant is the backfill's job.
    lookback_hours: int = Field(alias="RECONCILE_LOOKBACK_HOURS", default=24, ge=1, le=720)


class BackfillSettings(SweepSettings):
    """What the backfill function needs: a sweep's settings and the pacing that keeps live callouts first
    (``nrtsync.backfill.Pacing``; docs/ZUORA.md, "Initial load and replay")."""

    # 2,000 = 10 full sync batches of 200: a live callout queued behind the backfill waits for at most that.
    max_queue_backlog: int = Field(alias="BACKFILL_MAX_QUEUE_BACKLOG", default=2_000, ge=10, le=1_000_000)
    # Below the sync's ApiUsageBudgetPercent (95 by default), so the backfill gives way before the sync must stop.
    max_api_usage_percent: float = Field(alias="BACKFILL_MAX_API_USAGE_PERCENT", default=80.0, ge=1, le=100)
    wait_seconds: int = Field(alias="BACKFILL_WAIT_SECONDS", default=60, ge=1, le=3_600)
    api_usage_max_age_seconds: int = Field(alias="BACKFILL_API_USAGE_MAX_AGE_SECONDS", default=1_800, ge=60, le=86_400)


ingest_settings = cache(IngestSettings.from_env)
authorizer_settings = cache(AuthorizerSettings.from_env)
sync_settings = cache(SyncSettings.from_env)
metrics_settings = cache(MetricsSettings.from_env)
reconcile_settings = cache(ReconcileSettings.from_env)
backfill_settings = cache(BackfillSettings.from_env)
