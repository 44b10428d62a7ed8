"""PutMetricData chunking: 1,000 metrics and ~1 MB a call, 150 values a metric."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from nrtsync.adapters.aws.cloudwatch import (
    MAX_VALUES_PER_METRIC,
    CloudWatchPublisher,
    chunk_data,
    split_values,
    to_datum,
)
from nrtsync.ports.metrics import MetricPoint, MetricsPublishError

T = datetime(2025, 6, 2, 10, 37, tzinfo=UTC)


class RecordingCloudWatch:
    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self._fail_on_call = fail_on_call

    def put_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        if self._fail_on_call is not None and len(self.calls) == self._fail_on_call:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "PutMetricData")
        self.calls.append(kwargs)
        return {}


def gauge(i: int) -> MetricPoint:
    return MetricPoint(name="RecordsSyncedInWindow", unit="Count", timestamp=T, dimensions=(("Window", "5m"),), value=i)


def test_a_distribution_is_split_into_150_values_per_datum() -> None:
    point = MetricPoint(
        name="SyncLatency", unit="Milliseconds", timestamp=T, values=tuple(range(400)), counts=(2.0,) * 400
    )
    parts = split_values(point)
    assert [len(p.values) for p in parts] == [150, 150, 100]
    assert all(len(p.counts) == len(p.values) for p in parts)
    assert [v for p in parts for v in p.values] == list(range(400))


def test_datum_shapes() -> None:
    single = to_datum(gauge(7))
    assert single["Value"] == 7
    assert single["Dimensions"] == [{"Name": "Window", "Value": "5m"}]
    assert "Values" not in single
    dist = to_datum(MetricPoint(name="SyncLatency", unit="Milliseconds", timestamp=T, values=(1.0, 2.0)))
    assert dist["Values"] == [1.0, 2.0]
    assert dist["Counts"] == [1.0, 1.0]
    assert "Dimensions" not in dist


def test_publish_chunks_to_1000_metrics_per_call() -> None:
    client = RecordingCloudWatch()
    sent = CloudWatchPublisher(client=client).publish("Ns", [gauge(i) for i in range(2_345)])  # type: ignore[arg-type]
    assert sent == 2_345
    assert [len(c["MetricData"]) for c in client.calls] == [1_000, 1_000, 345]
    assert all(c["Namespace"] == "Ns" for c in client.calls)


def test_publish_keeps_big_distributions_under_the_size_limit() -> None:
    client = RecordingCloudWatch()
    points = [
        MetricPoint(
            name="SyncLatency",
            unit="Milliseconds",
            timestamp=T,
            dimensions=(("ObjectType", f"Type{i}"),),
            values=tuple(float(v) + 0.123456789 for v in range(1_000_000, 1_000_000 + 3 * MAX_VALUES_PER_METRIC)),
        )
        for i in range(400)
    ]
    CloudWatchPublisher(client=client).publish("Ns", points)  # type: ignore[arg-type]
    assert sum(len(c["MetricData"]) for c in client.calls) == 1_200
    assert all(len(d["Values"]) <= MAX_VALUES_PER_METRIC for c in client.calls for d in c["MetricData"])
    assert all(len(str(c["MetricData"])) < 1_000_000 for c in client.calls)
    assert len(client.calls) > 2  # the byte limit, not the count limit, cut these


def test_chunk_data_never_yields_empty_chunks() -> None:
    assert list(chunk_data([])) == []
    assert [len(c) for c in chunk_data([to_datum(gauge(1))], max_bytes=1)] == [1]


def test_a_failed_call_is_a_publish_error() -> None:
    client = RecordingCloudWatch(fail_on_call=1)
    with pytest.raises(MetricsPublishError) as caught:
        CloudWatchPublisher(client=client).publish("Ns", [gauge(i) for i in range(1_500)])  # type: ignore[arg-type]
    assert isinstance(caught.value.__cause__, ClientError)
    assert len(client.calls) == 1
