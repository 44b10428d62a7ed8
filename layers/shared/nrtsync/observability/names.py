"""Every metric name the product emits, with its dimensions, and the metrics function's windows: one registry.

Every emitter (the metrics function's PutMetricData, and the EMF lines of the ``report_*`` functions in
``nrtsync.app``) spells names through these constants, and the dashboard test checks template.yaml against them,
so a renamed metric cannot silently leave a graph empty or an alarm watching nothing. One name per quantity, one
meaning per name: a session count and a window total of the same records have different names.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

# Dimensions
WINDOW_DIMENSION: Final = "Window"
OBJECT_TYPE_DIMENSION: Final = "ObjectType"
SERVICE_DIMENSION: Final = "service"  # Powertools' default dimension on every EMF metric (POWERTOOLS_SERVICE_NAME)
REASON_DIMENSION: Final = "Reason"
ALL_OBJECT_TYPES: Final = "All"

# Windows: label -> length. Up to 1 h exact; 24 h and 7 d from hourly histograms (see docs/METRICS.md).
WINDOWS: Final[dict[str, timedelta]] = {
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
EXACT_WINDOWS: Final = frozenset({"5m", "1h"})

PERCENTILES: Final[tuple[int, ...]] = (50, 90, 99)

# Window metrics (dimensions Window + ObjectType), one data point per window, object type and run.
SYNC_LATENCY_P50: Final = "SyncLatencyP50"
SYNC_LATENCY_P90: Final = "SyncLatencyP90"
SYNC_LATENCY_P99: Final = "SyncLatencyP99"
SYNC_LATENCY_COUNT: Final = "SyncLatencyCount"
END_TO_END_LATENCY_P50: Final = "EndToEndLatencyP50"
END_TO_END_LATENCY_P90: Final = "EndToEndLatencyP90"
END_TO_END_LATENCY_P99: Final = "EndToEndLatencyP99"
END_TO_END_LATENCY_COUNT: Final = "EndToEndLatencyCount"
# Totals over a window (not to be confused with the sync function's per-session counts below).
RECORDS_SYNCED_IN_WINDOW: Final = "RecordsSyncedInWindow"
RECORDS_FAILED_IN_WINDOW: Final = "RecordsFailedInWindow"
RECORDS_WAITING_IN_WINDOW: Final = "RecordsWaitingInWindow"
# Org-wide, no dimensions: the org's Salesforce API usage, from the reading the sync function keeps in the state
# table (the only name for it; the sync function logs its own reading per session but does not publish it).
API_USAGE_PERCENT: Final = "ApiUsagePercent"
# Raw per-minute distributions (dimension ObjectType only), published once per minute as Values/Counts so
# that CloudWatch's own pNN statistics work for any period.
SYNC_LATENCY: Final = "SyncLatency"
END_TO_END_LATENCY: Final = "EndToEndLatency"

SYNC_LATENCY_PERCENTILES: Final[dict[int, str]] = {50: SYNC_LATENCY_P50, 90: SYNC_LATENCY_P90, 99: SYNC_LATENCY_P99}
END_TO_END_LATENCY_PERCENTILES: Final[dict[int, str]] = {
    50: END_TO_END_LATENCY_P50,
    90: END_TO_END_LATENCY_P90,
    99: END_TO_END_LATENCY_P99,
}

WINDOW_METRIC_NAMES: Final[tuple[str, ...]] = (
    SYNC_LATENCY_P50,
    SYNC_LATENCY_P90,
    SYNC_LATENCY_P99,
    SYNC_LATENCY_COUNT,
    END_TO_END_LATENCY_P50,
    END_TO_END_LATENCY_P90,
    END_TO_END_LATENCY_P99,
    END_TO_END_LATENCY_COUNT,
    RECORDS_SYNCED_IN_WINDOW,
    RECORDS_FAILED_IN_WINDOW,
    RECORDS_WAITING_IN_WINDOW,
)
DISTRIBUTION_METRIC_NAMES: Final[tuple[str, ...]] = (SYNC_LATENCY, END_TO_END_LATENCY)

# Every name the metrics function publishes with PutMetricData, in its namespace.
METRIC_NAMES: Final[tuple[str, ...]] = (*WINDOW_METRIC_NAMES, API_USAGE_PERCENT, *DISTRIBUTION_METRIC_NAMES)

# The metrics function's own health, one data point per run (EMF, dimension ``service``).
HISTORY_ITEMS_SKIPPED: Final = "HistoryItemsSkipped"
HOUR_ROLLUPS_WRITTEN: Final = "HourRollupsWritten"
HOURS_NOT_ROLLED: Final = "HoursNotRolled"
METRIC_DATA_PUBLISHED: Final = "MetricDataPublished"
DISTRIBUTION_MINUTES_PUBLISHED: Final = "DistributionMinutesPublished"
RUN_METRIC_NAMES: Final[tuple[str, ...]] = (
    HISTORY_ITEMS_SKIPPED,
    HOUR_ROLLUPS_WRITTEN,
    HOURS_NOT_ROLLED,
    METRIC_DATA_PUBLISHED,
    DISTRIBUTION_MINUTES_PUBLISHED,
)

# The sync function's counts, one data point per session (EMF, dimension ``service``).
RECORDS_WRITTEN: Final = "RecordsWritten"
RECORDS_SUPERSEDED: Final = "RecordsSuperseded"
RECORDS_DUPLICATE: Final = "RecordsDuplicate"
RECORDS_STALE: Final = "RecordsStale"
RECORDS_WAITING: Final = "RecordsWaiting"
RECORDS_FAILED: Final = "RecordsFailed"
SALESFORCE_API_CALLS: Final = "SalesforceApiCalls"
BATCH_SIZE: Final = "BatchSize"
# Seconds the oldest change a session handed back to the queue (waiting: its parent, a busy record, a batch that
# tripped the breaker) has waited since its callout arrived; 0 when none waits. SQS's ApproximateAgeOfOldestMessage
# leaves out messages received three or more times, which is exactly these; its alarm watches this instead.
OLDEST_WAITING_CHANGE_AGE: Final = "OldestWaitingChangeAge"
SYNC_SESSION_METRIC_NAMES: Final[tuple[str, ...]] = (
    RECORDS_WRITTEN,
    RECORDS_SUPERSEDED,
    RECORDS_DUPLICATE,
    RECORDS_STALE,
    RECORDS_WAITING,
    RECORDS_FAILED,
    SALESFORCE_API_CALLS,
    BATCH_SIZE,
    OLDEST_WAITING_CHANGE_AGE,
)

# The ingest function's, one data point per callout (EMF, dimension ``service``; rejections also per ``Reason``).
CALLOUTS_ACCEPTED: Final = "CalloutsAccepted"
CALLOUTS_REJECTED: Final = "CalloutsRejected"
INGEST_METRIC_NAMES: Final[tuple[str, ...]] = (CALLOUTS_ACCEPTED, CALLOUTS_REJECTED)

# The sync function's circuit breaker: a gauge, 1 open / 0 closed, one data point per probe run (once a minute;
# EMF, dimension ``service``). The breaker alarm fires when it stays 1, or is missing, BreakerOpenAlarmMinutes.
SYNC_PAUSED: Final = "SyncPaused"
BREAKER_METRIC_NAMES: Final[tuple[str, ...]] = (SYNC_PAUSED,)

# Reconciliation, one data point per run (EMF, dimension ``service``). RecoveredByReconciliation counts changes
# queued because Salesforce lacked them: each is a callout lost or refused (its alarm). The watermark lag (s) is
# how far the oldest object's last finished window is behind the run: it grows while runs fail or stop early.
RECOVERED_BY_RECONCILIATION: Final = "RecoveredByReconciliation"
RECONCILE_RECORDS_READ: Final = "ReconcileRecordsRead"
RECONCILE_MALFORMED_RECORDS: Final = "ReconcileMalformedRecords"
RECONCILE_WATERMARK_LAG: Final = "ReconcileWatermarkLag"
RECONCILE_METRIC_NAMES: Final[tuple[str, ...]] = (
    RECOVERED_BY_RECONCILIATION,
    RECONCILE_RECORDS_READ,
    RECONCILE_MALFORMED_RECORDS,
    RECONCILE_WATERMARK_LAG,
)

# Every name in the namespace, with the dimension sets it is emitted under: what a graph or an alarm may watch.
DIMENSION_SETS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    **dict.fromkeys(WINDOW_METRIC_NAMES, ((WINDOW_DIMENSION, OBJECT_TYPE_DIMENSION),)),
    **dict.fromkeys(DISTRIBUTION_METRIC_NAMES, ((OBJECT_TYPE_DIMENSION,),)),
    API_USAGE_PERCENT: ((),),
    **dict.fromkeys(
        (
            *RUN_METRIC_NAMES,
            *SYNC_SESSION_METRIC_NAMES,
            *BREAKER_METRIC_NAMES,
            *RECONCILE_METRIC_NAMES,
            CALLOUTS_ACCEPTED,
        ),
        ((SERVICE_DIMENSION,),),
    ),
    CALLOUTS_REJECTED: ((SERVICE_DIMENSION,), (SERVICE_DIMENSION, REASON_DIMENSION)),
}
