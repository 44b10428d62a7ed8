"""What the metrics function publishes: names, units, dimensions and windows, in one place.

The dashboard and its test read these constants, so a renamed metric cannot silently leave a graph empty.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

# Dimensions
WINDOW_DIMENSION: Final = "Window"
OBJECT_TYPE_DIMENSION: Final = "ObjectType"
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
RECORDS_SYNCED: Final = "RecordsSynced"
RECORDS_FAILED: Final = "RecordsFailed"
RECORDS_WAITING: Final = "RecordsWaiting"
# Org-wide, no dimensions.
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
    RECORDS_SYNCED,
    RECORDS_FAILED,
    RECORDS_WAITING,
)
DISTRIBUTION_METRIC_NAMES: Final[tuple[str, ...]] = (SYNC_LATENCY, END_TO_END_LATENCY)

# Every name the metrics function publishes with PutMetricData, in its namespace.
METRIC_NAMES: Final[tuple[str, ...]] = (*WINDOW_METRIC_NAMES, API_USAGE_PERCENT, *DISTRIBUTION_METRIC_NAMES)

# The function's own health, emitted through Powertools (EMF) by the handler.
RUN_METRIC_NAMES: Final[tuple[str, ...]] = (
    "HistoryItemsSkipped",
    "HourRollupsWritten",
    "HoursNotRolled",
    "MetricDataPublished",
    "DistributionMinutesPublished",
)

# What the sync and ingest functions emit through Powertools (EMF), with the dimension ``service``.
SYNC_SESSION_METRIC_NAMES: Final[tuple[str, ...]] = (
    "RecordsWritten",
    "RecordsSuperseded",
    "RecordsDuplicate",
    "RecordsStale",
    "RecordsWaiting",
    "RecordsFailed",
    "SalesforceApiCalls",
    "BatchSize",
    "SalesforceApiUsagePercent",
)
INGEST_METRIC_NAMES: Final[tuple[str, ...]] = ("CalloutsAccepted", "CalloutsRejected")
