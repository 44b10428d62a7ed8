"""CloudWatch PutMetricData, chunked to the API's limits (1,000 metrics and 1 MB a call, 150 values a metric)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.calls import limited_chunks
from nrtsync.adapters.aws.clients import PUBLISH_CONFIG
from nrtsync.ports.metrics import MetricPoint, MetricsPublishError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

MAX_METRICS_PER_CALL: Final = 1_000
MAX_VALUES_PER_METRIC: Final = 150
# The documented limit is 1 MB per request; the estimate below is the JSON size of the data, and the
# wire encoding (query or JSON protocol) adds overhead, so keep a wide margin.
MAX_ESTIMATED_BYTES_PER_CALL: Final = 600_000


def split_values(point: MetricPoint, limit: int = MAX_VALUES_PER_METRIC) -> list[MetricPoint]:
    """A distribution with more than ``limit`` distinct values, as several data points of at most ``limit``."""
    if len(point.values) <= limit:
        return [point]
    counts = point.counts or (1.0,) * len(point.values)
    return [
        MetricPoint(
            name=point.name,
            unit=point.unit,
            timestamp=point.timestamp,
            dimensions=point.dimensions,
            values=point.values[start : start + limit],
            counts=counts[start : start + limit],
        )
        for start in range(0, len(point.values), limit)
    ]


def to_datum(point: MetricPoint) -> MetricDatumTypeDef:
    """The PutMetricData shape of a point."""
    datum: dict[str, Any] = {
        "MetricName": point.name,
        "Timestamp": point.timestamp,
        "Unit": point.unit,
        "StorageResolution": 60,
    }
    if point.dimensions:
        datum["Dimensions"] = [{"Name": n, "Value": v} for n, v in point.dimensions]
    if point.values:
        datum["Values"] = list(point.values)
        datum["Counts"] = list(point.counts or (1.0,) * len(point.values))
    else:
        datum["Value"] = 0.0 if point.value is None else point.value
    return datum  # type: ignore[return-value]


def _estimated_size(datum: MetricDatumTypeDef) -> int:
    return len(json.dumps(datum, default=str)) + 64


def chunk_data(
    data: Sequence[MetricDatumTypeDef],
    max_metrics: int = MAX_METRICS_PER_CALL,
    max_bytes: int = MAX_ESTIMATED_BYTES_PER_CALL,
) -> Iterator[list[MetricDatumTypeDef]]:
    """Consecutive chunks of at most ``max_metrics`` data and about ``max_bytes``."""
    return limited_chunks(data, _estimated_size, max_count=max_metrics, max_bytes=max_bytes)


class CloudWatchPublisher:
    """Sends metric points to CloudWatch in as few calls as the limits allow."""

    def __init__(self, client: CloudWatchClient | None = None) -> None:
        self._client: CloudWatchClient = client or boto3.client("cloudwatch", config=PUBLISH_CONFIG)

    def publish(self, namespace: str, points: Sequence[MetricPoint]) -> int:
        """Publish every point; returns how many data were sent. Raises MetricsPublishError on the first
        failed call (the calls before it stay published)."""
        data = [to_datum(part) for point in points for part in split_values(point)]
        for chunk in chunk_data(data):
            try:
                self._client.put_metric_data(Namespace=namespace, MetricData=chunk)
            except (ClientError, BotoCoreError) as exc:
                raise MetricsPublishError(f"PutMetricData failed for {len(chunk)} metric data") from exc
        return len(data)
