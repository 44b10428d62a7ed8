"""In-memory stand-ins for the metrics function's ports (``nrtsync.ports.metrics``), and for the two low-level
clients its real adapters take (DynamoDB's Query/Get/Put, CloudWatch's PutMetricData), so a benchmark can run the
real adapters without a network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from nrtsync.ports.metrics import (
    HourRollup,
    MetricPoint,
    MetricsPublishError,
    MinuteRead,
    MinuteSummary,
    RolledHours,
)
from nrtsync.ports.salesforce import ApiUsage

# PutMetricData refuses values outside this range (MetricDatum, CloudWatch API Reference).
CLOUDWATCH_MAX = 2.0**360


class FakeHistory:
    """``MetricsHistory``: minute summaries given up front, rollups and the watermark kept in dicts."""

    def __init__(self, summaries: Sequence[MinuteSummary] = ()) -> None:
        self.summaries = list(summaries)
        self.rolled: dict[datetime, dict[str, HourRollup]] = {}
        self.watermark: datetime | None = None
        self.minute_reads = 0

    def minute_summaries(self, minutes: Sequence[datetime]) -> MinuteRead:
        self.minute_reads += len(minutes)
        wanted = set(minutes)
        return MinuteRead(summaries=tuple(s for s in self.summaries if s.minute in wanted))

    def rolled_hours(self, first: datetime, last: datetime) -> RolledHours:
        hours = frozenset(h for h in self.rolled if first <= h <= last)
        return RolledHours(hours=hours, rollups=tuple(r for h in hours for r in self.rolled[h].values()))

    def write_rollups(
        self, hour: datetime, rollups: Mapping[str, HourRollup], *, skipped: int, expires_at: int
    ) -> None:
        self.rolled[hour] = dict(rollups)

    def distribution_watermark(self) -> datetime | None:
        return self.watermark

    def advance_watermark(self, expected: datetime | None, new: datetime) -> bool:
        if self.watermark != expected:
            return False
        self.watermark = new
        return True


class FakeUsage:
    """``ApiUsageReader`` with a fixed answer."""

    def __init__(self, usage: ApiUsage | None = None) -> None:
        self.usage = usage

    def api_usage(self) -> ApiUsage | None:
        return self.usage


class FakePublisher:
    """``MetricPublisher``: keeps the points and refuses what CloudWatch refuses (a value beyond 2^360 either way);
    ``fail`` refuses any publication that carries values."""

    def __init__(self, fail: bool = False) -> None:
        self.points: list[MetricPoint] = []
        self.fail = fail

    def publish(self, namespace: str, points: Sequence[MetricPoint]) -> int:
        if self.fail and any(p.values for p in points):
            raise MetricsPublishError("CloudWatch said no")
        for point in points:
            values = [point.value] if point.value is not None else list(point.values)
            if not all(-CLOUDWATCH_MAX <= v <= CLOUDWATCH_MAX for v in values):
                raise MetricsPublishError(f"{point.name}: a value outside CloudWatch's range")
        self.points.extend(points)
        return len(points)

    def value(self, name: str, **dims: str) -> float | None:
        found = [p.value for p in self.points if p.name == name and dict(p.dimensions) == dims]
        assert len(found) <= 1, f"{name} {dims} published {len(found)} times"
        return found[0] if found else None


class InMemoryDynamoDB:
    """Just enough of the low-level client for the metrics function: Query by pk (sk BETWEEN), Get, Put."""

    def __init__(self, page_items: int = 100) -> None:
        self.page_items = page_items  # DynamoDB pages at 1 MB; rollup items are ~5-8 KB
        self.partitions: dict[str, dict[str, dict[str, Any]]] = {}
        self.queries = 0

    def put_item(self, *, TableName: str, Item: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803
        self.partitions.setdefault(Item["pk"]["S"], {})[Item.get("sk", {"S": ""})["S"]] = Item
        return {}

    def get_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803
        item = self.partitions.get(Key["pk"]["S"], {}).get(Key.get("sk", {"S": ""})["S"])
        return {"Item": item} if item else {}

    def query(self, *, ExpressionAttributeValues: dict[str, Any], **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self.queries += 1
        partition = self.partitions.get(ExpressionAttributeValues[":pk"]["S"], {})
        first = ExpressionAttributeValues.get(":first", {"S": ""})["S"]
        last = ExpressionAttributeValues.get(":last", {"S": "\uffff"})["S"]
        keys = sorted(k for k in partition if first <= k <= last)
        start = kwargs.get("ExclusiveStartKey")
        if start is not None:
            keys = [k for k in keys if k > start["sk"]["S"]]
        page = keys[: self.page_items]
        response: dict[str, Any] = {"Items": [partition[k] for k in page]}
        if len(keys) > self.page_items:
            response["LastEvaluatedKey"] = {"pk": ExpressionAttributeValues[":pk"], "sk": {"S": page[-1]}}
        return response


class DiscardingCloudWatch:
    """The PutMetricData call of the low-level client: counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        self.calls = 0
        self.data = 0

    def put_metric_data(self, *, Namespace: str, MetricData: list[Any]) -> dict[str, Any]:  # noqa: N803
        self.calls += 1
        self.data += len(MetricData)
        return {}
