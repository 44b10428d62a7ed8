"""The metrics function's side of the sync history: reads minute summaries, keeps hourly rollups and the
distribution watermark.

The keys and item shapes (its own ``ROLLUP#HOUR`` and ``METRICS#WATERMARK`` items too) are in ``adapters.aws.tables``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.calls import conditional_write
from nrtsync.adapters.aws.tables import (
    DYNAMODB_CONFIG,
    ROLLUP_PK,
    WATERMARK_KEY,
    hour_key,
    minute_pk,
    parse_hour_key,
    parse_minute_key,
)
from nrtsync.domain.latency import DEFAULT_RELATIVE_ERROR, MAX_LATENCY_MS, HistogramFormatError, LatencyHistogram
from nrtsync.observability import logger
from nrtsync.ports.metrics import (
    HistoryReadError,
    HourRollup,
    MalformedItemError,
    MinuteRead,
    MinuteSummary,
    RecordCounts,
    RolledHours,
    minute_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_SK_MAX: Final = "#\uffff"

type Item = Mapping[str, AttributeValueTypeDef]


# -- low-level attribute parsing (faster than boto3's Decimal-based deserializer, and strict) ------------
def _string(item: Item, name: str) -> str:
    value = item.get(name)
    if value is None or "S" not in value or not value["S"]:
        raise MalformedItemError(f"{name} is missing or not a non-empty string")
    return value["S"]


def _number(item: Item, name: str, default: float | None = None) -> float:
    value = item.get(name)
    if value is None and default is not None:
        return default
    if value is None or "N" not in value:
        raise MalformedItemError(f"{name} is missing or not a number")
    try:
        number = float(value["N"])
    except ValueError as exc:
        raise MalformedItemError(f"{name} is not a number") from exc
    if not math.isfinite(number):
        raise MalformedItemError(f"{name} is not finite")
    return number


def _count(item: Item, name: str, default: int | None = None) -> int:
    number = _number(item, name, None if default is None else float(default))
    if number < 0 or number != int(number):
        raise MalformedItemError(f"{name} is not a count")
    return int(number)


def _numbers(item: Item, name: str) -> tuple[float, ...]:
    value = item.get(name)
    if value is None:
        return ()
    if "L" not in value:
        raise MalformedItemError(f"{name} is not a list")
    try:
        numbers = tuple(float(element["N"]) for element in value["L"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedItemError(f"{name} holds something that is not a number") from exc
    if not all(math.isfinite(n) and 0 <= n <= MAX_LATENCY_MS for n in numbers):
        # CloudWatch refuses values beyond 2**360 and would fail the whole publish, not just this item.
        raise MalformedItemError(f"{name} holds a latency outside 0..{MAX_LATENCY_MS:.0f} ms")
    return numbers


def _binary(item: Item, name: str) -> bytes:
    value = item.get(name)
    if value is None:
        return b""
    if "B" not in value:
        raise MalformedItemError(f"{name} is not binary")
    raw = value["B"]
    return raw if isinstance(raw, bytes) else bytes(raw)


def _key(item: Item) -> dict[str, str]:
    return {k: item[k].get("S", "?") for k in ("pk", "sk") if k in item}


def _skip(item: Item, reason: str) -> None:
    logger.warning("malformed history item skipped", extra={**_key(item), "reason": reason})


def _record_counts(item: Item) -> RecordCounts:
    return RecordCounts(
        written=_count(item, "written"),
        failed=_count(item, "failed"),
        waiting=_count(item, "waiting"),
        superseded=_count(item, "superseded", 0),
        stale=_count(item, "stale", 0),
    )


def parse_minute_item(item: Item, minute: datetime) -> MinuteSummary:
    """A ``MINUTE#`` item as a MinuteSummary; raises MalformedItemError."""
    if "type" in item and item["type"].get("S") != "minute":
        raise MalformedItemError("type is not 'minute'")
    if "minute" in item and item["minute"].get("S") != minute_key(minute):
        raise MalformedItemError("minute does not match the partition")
    return MinuteSummary(
        minute=minute,
        object_type=_string(item, "object_type"),
        session_id=_string(item, "session_id"),
        counts=_record_counts(item),
        sync_ms=_numbers(item, "sync_ms"),
        e2e_ms=_numbers(item, "e2e_ms"),
    )


def _histogram(item: Item, prefix: str, relative_error: float) -> LatencyHistogram:
    try:
        histogram = LatencyHistogram.from_bytes(
            _binary(item, f"{prefix}_hist"),
            zero_count=_count(item, f"{prefix}_zero", 0),
            relative_error=relative_error,
        )
    except HistogramFormatError as exc:
        raise MalformedItemError(f"{prefix}_hist: {exc}") from exc
    if histogram.count != _count(item, f"{prefix}_count"):
        raise MalformedItemError(f"{prefix}_count does not match the histogram")
    return histogram


def parse_rollup_item(item: Item, relative_error: float) -> HourRollup:
    """A rollup item as an HourRollup; raises MalformedItemError (also for another histogram resolution)."""
    if _number(item, "rel_error") != relative_error:
        raise MalformedItemError("rollup histogram has another relative error")
    try:
        hour = parse_hour_key(_string(item, "hour"))
    except ValueError as exc:
        raise MalformedItemError("hour is not YYYY-MM-DDTHH") from exc
    return HourRollup(
        hour=hour,
        object_type=_string(item, "object_type"),
        counts=_record_counts(item),
        minute_items=_count(item, "minute_items", 0),
        sync=_histogram(item, "sync", relative_error),
        e2e=_histogram(item, "e2e", relative_error),
    )


def _histogram_attributes(prefix: str, histogram: LatencyHistogram) -> dict[str, AttributeValueTypeDef]:
    attributes: dict[str, AttributeValueTypeDef] = {
        f"{prefix}_count": {"N": str(histogram.count)},
        f"{prefix}_zero": {"N": str(histogram.zero_count)},
    }
    encoded = histogram.to_bytes()
    if encoded:
        attributes[f"{prefix}_hist"] = {"B": encoded}
    return attributes


def rollup_item(rollup: HourRollup, expires_at: int) -> dict[str, AttributeValueTypeDef]:
    """The DynamoDB item of a rollup."""
    counts = rollup.counts
    return {
        "pk": {"S": ROLLUP_PK},
        "sk": {"S": f"{hour_key(rollup.hour)}#{rollup.object_type}"},
        "type": {"S": "hour_rollup"},
        "hour": {"S": hour_key(rollup.hour)},
        "object_type": {"S": rollup.object_type},
        "written": {"N": str(counts.written)},
        "failed": {"N": str(counts.failed)},
        "waiting": {"N": str(counts.waiting)},
        "superseded": {"N": str(counts.superseded)},
        "stale": {"N": str(counts.stale)},
        "minute_items": {"N": str(rollup.minute_items)},
        "rel_error": {"N": repr(rollup.sync.relative_error)},
        **_histogram_attributes("sync", rollup.sync),
        **_histogram_attributes("e2e", rollup.e2e),
        "expires_at": {"N": str(expires_at)},
    }


def _get_item(
    client: DynamoDBClient, table: str, key: Mapping[str, Any], what: str, *, consistent: bool = False
) -> Item | None:
    extra: dict[str, Any] = {"ConsistentRead": True} if consistent else {}
    try:
        response = client.get_item(TableName=table, Key=key, **extra)
    except (ClientError, BotoCoreError) as exc:
        raise HistoryReadError(f"could not read {what}") from exc
    return response.get("Item")


class DynamoMetricsHistory:
    """The history table as the metrics function uses it."""

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        relative_error: float = DEFAULT_RELATIVE_ERROR,
        read_concurrency: int = 8,
    ) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or boto3.client("dynamodb", config=DYNAMODB_CONFIG)
        self._relative_error = relative_error
        self._concurrency = max(1, read_concurrency)

    def _query(self, pk: str, sk_between: tuple[str, str] | None = None) -> list[dict[str, AttributeValueTypeDef]]:
        args: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        if sk_between is not None:
            args["KeyConditionExpression"] += " AND sk BETWEEN :first AND :last"
            args["ExpressionAttributeValues"] |= {":first": {"S": sk_between[0]}, ":last": {"S": sk_between[1]}}
        items: list[dict[str, AttributeValueTypeDef]] = []
        try:
            while True:
                response = self._client.query(**args)
                items.extend(response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    return items
                args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise HistoryReadError(f"could not query {pk}") from exc

    def _minute(self, minute: datetime) -> tuple[list[MinuteSummary], int]:
        summaries: list[MinuteSummary] = []
        skipped = 0
        for item in self._query(minute_pk(minute)):
            try:
                summaries.append(parse_minute_item(item, minute))
            except MalformedItemError as exc:
                _skip(item, str(exc))
                skipped += 1
        return summaries, skipped

    def minute_summaries(self, minutes: Sequence[datetime]) -> MinuteRead:
        """Every minute summary of the given minutes (one Query per minute, run concurrently)."""
        if not minutes:
            return MinuteRead(summaries=())
        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(minutes))) as pool:
            results = list(pool.map(self._minute, minutes))
        return MinuteRead(
            summaries=tuple(s for summaries, _ in results for s in summaries),
            skipped=sum(skipped for _, skipped in results),
        )

    def rolled_hours(self, first: datetime, last: datetime) -> RolledHours:
        """The hours in ``[first, last]`` that have a completion marker, and their rollups."""
        items = self._query(ROLLUP_PK, (hour_key(first), hour_key(last) + _SK_MAX))
        hours: set[datetime] = set()
        rollups: list[HourRollup] = []
        skipped = 0
        for item in items:
            try:
                parsed = self._rollup_or_marker(item)
            except (MalformedItemError, ValueError) as exc:
                _skip(item, str(exc))
                skipped += 1
                continue
            if isinstance(parsed, HourRollup):
                rollups.append(parsed)
            else:
                hours.add(parsed)
        return RolledHours(
            hours=frozenset(hours),
            rollups=tuple(r for r in rollups if r.hour in hours),
            skipped=skipped,
        )

    def _rollup_or_marker(self, item: Item) -> HourRollup | datetime:
        kind = _string(item, "type")
        if kind == "hour_rollup_marker":
            return parse_hour_key(_string(item, "hour"))
        if kind == "hour_rollup":
            return parse_rollup_item(item, self._relative_error)
        raise MalformedItemError(f"unknown type {kind!r}")

    def write_rollups(
        self, hour: datetime, rollups: Mapping[str, HourRollup], *, skipped: int, expires_at: int
    ) -> None:
        """Write an hour's rollups, then its marker. Re-rolling an hour rewrites identical items, so a retry
        after a crash between the two steps counts nothing twice."""
        try:
            for object_type in sorted(rollups):
                self._client.put_item(TableName=self._table, Item=rollup_item(rollups[object_type], expires_at))
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": ROLLUP_PK},
                    "sk": {"S": hour_key(hour)},
                    "type": {"S": "hour_rollup_marker"},
                    "hour": {"S": hour_key(hour)},
                    "object_types": {"L": [{"S": t} for t in sorted(rollups)]},
                    "minute_items": {"N": str(sum(r.minute_items for r in rollups.values()))},
                    "skipped": {"N": str(skipped)},
                    "rolled_at": {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
                    "expires_at": {"N": str(expires_at)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise HistoryReadError(f"could not write the rollups of {hour_key(hour)}") from exc

    def distribution_watermark(self) -> datetime | None:
        """The last minute whose raw latencies were published, or None before the first publication."""
        item = _get_item(self._client, self._table, WATERMARK_KEY, "the distribution watermark", consistent=True)
        if item is None:
            return None
        try:
            return parse_minute_key(_string(item, "minute"))
        except (MalformedItemError, ValueError) as exc:
            _skip(item, str(exc))
            return None

    def advance_watermark(self, expected: datetime | None, new: datetime) -> bool:
        """Move the watermark from ``expected`` to ``new``; False when another run moved it first."""
        args: dict[str, Any] = {
            "TableName": self._table,
            "Item": {**WATERMARK_KEY, "type": {"S": "watermark"}, "minute": {"S": minute_key(new)}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if expected is not None:
            args |= {
                "ConditionExpression": "#minute = :expected",
                "ExpressionAttributeNames": {"#minute": "minute"},
                "ExpressionAttributeValues": {":expected": {"S": minute_key(expected)}},
            }
        landed = conditional_write(
            lambda: self._client.put_item(**args), HistoryReadError, "could not move the distribution watermark"
        )
        return landed is not None
