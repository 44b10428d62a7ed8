"""Property-based malformed sync history through the metrics handler (moto in-process DynamoDB, fixed clock).

Good ``MINUTE#`` items in the sync function's shape are mixed with items that break the contract (a required
attribute missing or of the wrong type, a count that is no count, a latency list holding something else, the
wrong ``type`` or ``minute``) in the ``MINUTE#`` partitions and the ``ROLLUP#HOUR`` partition. The run must
not crash, must count every bad item as skipped, and must publish for the good items exactly the figures it
would publish without the bad ones (checked against Zuora's percentile rule, computed here).
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from functions.metrics import app
from nrtsync.adapters.aws.api_usage import DynamoApiUsageStore
from nrtsync.adapters.aws.history_reader import DynamoMetricsHistory
from nrtsync.adapters.aws.tables import ROLLUP_PK, WATERMARK_KEY, hour_key
from nrtsync.domain.latency import percentile
from nrtsync.observability.names import (
    ALL_OBJECT_TYPES,
    OBJECT_TYPE_DIMENSION,
    PERCENTILES,
    RECORDS_FAILED_IN_WINDOW,
    RECORDS_SYNCED_IN_WINDOW,
    SYNC_LATENCY,
    SYNC_LATENCY_COUNT,
    SYNC_LATENCY_PERCENTILES,
    WINDOW_DIMENSION,
    WINDOWS,
)
from nrtsync.ports.metrics import HOUR, ceil_hour, floor_hour, minute_key
from nrtsync.services.metrics.service import MetricsService
from nrtsync.services.metrics.settings import MetricsSettings
from nrtsync_fakes.metrics import FakePublisher
from tests.support.lambda_context import FakeLambdaContext

HISTORY = "fuzz-metrics-history"
STATE = "fuzz-metrics-state"
NOW = datetime(2026, 11, 26, 12, 30, 20, tzinfo=UTC)
CURRENT = NOW.replace(second=0)
# Minutes the run reads exactly once: the last hour (the hours before are marked rolled up below).
MINUTES = [CURRENT - timedelta(minutes=n) for n in range(1, 61)]
EVENT = json.loads((Path(__file__).parents[2] / "events" / "scheduled_metrics.json").read_text())
OBJECT_TYPES = ["Account", "Invoice"]
# CloudWatch's documented range for a metric value (PutMetricData): -2^360 .. 2^360, finite.
# A run costs ~0.5 s in moto (60 minute queries and the 7-day rollup partition, whatever the items), so fewer
# examples, each with more items.
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def window(published: FakePublisher, name: str, label: str, object_type: str) -> float | None:
    found = [
        p.value
        for p in published.points
        if p.name == name
        and p.dimension(WINDOW_DIMENSION) == label
        and p.dimension(OBJECT_TYPE_DIMENSION) == object_type
    ]
    assert len(found) <= 1, (name, label, object_type, found)
    return found[0] if found else None


def distribution(published: FakePublisher, object_type: str) -> Counter[float]:
    values: Counter[float] = Counter()
    for p in published.points:
        if p.name == SYNC_LATENCY and p.dimension(OBJECT_TYPE_DIMENSION) == object_type:
            for value, count in zip(p.values, p.counts, strict=True):
                values[value] += int(count)
    return values


# --- items ---------------------------------------------------------------------------------------------------


@dataclass
class Good:
    minute: datetime
    object_type: str
    session: str
    sync_ms: list[int]
    e2e_ms: list[int]
    failed: int
    waiting: int

    def item(self) -> dict[str, Any]:
        key = minute_key(self.minute)
        return {
            "pk": {"S": f"MINUTE#{key}"},
            "sk": {"S": f"{self.object_type}#{self.session}"},
            "type": {"S": "minute"},
            "object_type": {"S": self.object_type},
            "minute": {"S": key},
            "session_id": {"S": self.session},
            "written": {"N": str(len(self.sync_ms))},
            "failed": {"N": str(self.failed)},
            "waiting": {"N": str(self.waiting)},
            "superseded": {"N": "0"},
            "stale": {"N": "0"},
            "sync_ms": {"L": [{"N": str(v)} for v in self.sync_ms]},
            "e2e_ms": {"L": [{"N": str(v)} for v in self.e2e_ms]},
        }


latencies = st.lists(st.integers(min_value=0, max_value=3_600_000), max_size=8)
goods = st.builds(
    Good,
    minute=st.sampled_from(MINUTES),
    object_type=st.sampled_from(OBJECT_TYPES),
    session=st.from_regex(r"[0-9a-f]{8}", fullmatch=True),
    sync_ms=latencies,
    e2e_ms=latencies,
    failed=st.integers(min_value=0, max_value=5),
    waiting=st.integers(min_value=0, max_value=5),
)
any_attribute = st.one_of(
    st.text(max_size=10).map(lambda s: {"S": s}),
    st.integers(-5, 5).map(lambda n: {"N": str(n)}),
    st.binary(max_size=9).map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.just({"L": [{"S": "1"}]}),
    st.just({"M": {"N": {"N": "1"}}}),
)
REQUIRED_STRINGS = ["object_type", "session_id"]
REQUIRED_COUNTS = ["written", "failed", "waiting"]
OPTIONAL_COUNTS = ["superseded", "stale"]
LATENCY_LISTS = ["sync_ms", "e2e_ms"]


@st.composite
def broken_minute_items(draw: st.DrawFn) -> dict[str, Any]:
    """A minute item that breaks the contract for certain (so the run must skip it)."""
    item = draw(goods).item()
    item["sk"] = {"S": f"broken#{draw(st.uuids()).hex}"}
    how = draw(st.sampled_from(["drop", "string", "count", "optional-count", "list", "type", "minute", "junk"]))
    if how == "drop":
        del item[draw(st.sampled_from(REQUIRED_STRINGS + REQUIRED_COUNTS))]
    elif how == "string":
        item[draw(st.sampled_from(REQUIRED_STRINGS))] = draw(
            st.sampled_from([{"S": ""}, {"N": "1"}, {"NULL": True}, {"L": []}])
        )
    elif how in {"count", "optional-count"}:
        names = REQUIRED_COUNTS if how == "count" else OPTIONAL_COUNTS
        item[draw(st.sampled_from(names))] = draw(
            st.sampled_from([{"S": "1"}, {"N": "-1"}, {"N": "1.5"}, {"BOOL": True}, {"NULL": True}])
        )
    elif how == "list":
        item[draw(st.sampled_from(LATENCY_LISTS))] = draw(
            st.sampled_from(
                [{"S": "12"}, {"N": "12"}, {"L": [{"S": "12"}]}, {"L": [{"N": "1"}, {"NULL": True}]}, {"M": {}}]
            )
        )
    elif how == "type":
        item["type"] = draw(st.sampled_from([{"S": "session"}, {"S": ""}, {"N": "1"}]))
    elif how == "minute":
        item["minute"] = {"S": minute_key(CURRENT - timedelta(hours=3))}
    else:
        # Random attributes around the key, none of the required ones.
        item = {"pk": item["pk"], "sk": item["sk"]} | draw(
            st.dictionaries(st.sampled_from(["type", "minute", "sync_ms", "junk", "written2"]), any_attribute)
        )
    return item


ROLLUP_HOUR = floor_hour(CURRENT) - 3 * HOUR


@st.composite
def broken_rollup_items(draw: st.DrawFn) -> dict[str, Any]:
    """A rollup that breaks the contract: wrong type, missing counts, histogram bytes that are not pairs..."""
    item: dict[str, Any] = {
        "pk": {"S": ROLLUP_PK},
        "sk": {"S": f"{hour_key(ROLLUP_HOUR)}#broken{draw(st.uuids()).hex}"},
        "type": {"S": "hour_rollup"},
        "hour": {"S": hour_key(ROLLUP_HOUR)},
        "object_type": {"S": "Account"},
        "written": {"N": "1"},
        "failed": {"N": "0"},
        "waiting": {"N": "0"},
        "rel_error": {"N": "0.01"},
        "sync_hist": {"B": array("i", [10, 1]).tobytes()},
        "sync_count": {"N": "1"},
        "sync_zero": {"N": "0"},
        "e2e_count": {"N": "0"},
    }
    how = draw(st.sampled_from(["type", "rel_error", "hist-bytes", "hist-count", "count", "hour", "drop"]))
    if how == "type":
        item["type"] = draw(st.sampled_from([{"S": "rollup"}, {"N": "1"}, {"S": ""}]))
    elif how == "rel_error":
        item["rel_error"] = draw(st.sampled_from([{"N": "0.02"}, {"S": "0.01"}]))
    elif how == "hist-bytes":
        item["sync_hist"] = {"B": draw(st.binary(min_size=1, max_size=7) | st.just(array("i", [3, 0]).tobytes()))}
    elif how == "hist-count":
        item["sync_count"] = {"N": "2"}
    elif how == "count":
        item["written"] = draw(st.sampled_from([{"N": "-3"}, {"S": "3"}]))
    elif how == "hour":
        item["hour"] = {"S": draw(st.sampled_from(["2026-11-26", "yesterday", "2026-11-26T99"]))}
    else:
        del item[draw(st.sampled_from(["object_type", "written", "rel_error", "sync_count", "hour"]))]
    return item


# --- the world -----------------------------------------------------------------------------------------------


@dataclass
class World:
    dynamodb: Any
    written: list[dict[str, Any]] = field(default_factory=list)

    def put(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            self.dynamodb.put_item(TableName=HISTORY, Item=item)
            self.written.append({"pk": item["pk"], "sk": item["sk"]})

    def clear(self) -> None:
        for key in self.written:
            self.dynamodb.delete_item(TableName=HISTORY, Key=key)
        self.written.clear()
        self.dynamodb.delete_item(TableName=HISTORY, Key=WATERMARK_KEY)

    def run(self) -> tuple[dict[str, Any], FakePublisher]:
        publisher = FakePublisher()
        metrics_settings = MetricsSettings.from_env(
            {
                "SYNC_HISTORY_TABLE": HISTORY,
                "SYNC_STATE_TABLE": STATE,
                "POWERTOOLS_METRICS_NAMESPACE": "NrtSyncTest",
                # Per-object-type windows are opt-in since issue 13; this test checks them too.
                "WINDOW_METRICS_BY_OBJECT_TYPE": "true",
            }
        )
        app.service.use(
            MetricsService(
                metrics_settings,
                history=DynamoMetricsHistory(HISTORY, client=self.dynamodb, read_concurrency=1),
                api_usage=DynamoApiUsageStore(STATE, client=self.dynamodb),
                publisher=publisher,
                clock=lambda: NOW,
            )
        )
        try:
            result: dict[str, Any] = app.lambda_handler(EVENT, FakeLambdaContext())
        finally:
            app.service.use(None)
        return result, publisher


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with mock_aws():
        client: Any = boto3.client("dynamodb", region_name="eu-west-1")
        for name, keys in ((HISTORY, ("pk", "sk")), (STATE, ("pk",))):
            schema: list[dict[str, str]] = [{"AttributeName": "pk", "KeyType": "HASH"}]
            if "sk" in keys:
                schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
            client.create_table(
                TableName=name,
                KeySchema=schema,
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
                BillingMode="PAY_PER_REQUEST",
            )
        # Every closed hour of the 7-day window is marked rolled up (with nothing in it), so a run reads only the
        # last hour's minutes, each once.
        hour = ceil_hour(CURRENT - WINDOWS["7d"])
        while hour < floor_hour(CURRENT):
            client.put_item(
                TableName=HISTORY,
                Item={
                    "pk": {"S": ROLLUP_PK},
                    "sk": {"S": hour_key(hour)},
                    "type": {"S": "hour_rollup_marker"},
                    "hour": {"S": hour_key(hour)},
                },
            )
            hour += HOUR
        yield World(dynamodb=client)


def _expected_window(goods: list[Good], label: str, object_type: str) -> tuple[list[int], int, int]:
    start = CURRENT - WINDOWS[label]
    chosen = [g for g in goods if g.minute >= start and object_type in (g.object_type, ALL_OBJECT_TYPES)]
    return [v for g in chosen for v in g.sync_ms], sum(g.failed for g in chosen), len(chosen)


def _unique(goods: list[Good]) -> list[Good]:
    # Two goods with the same minute, type and session are one DynamoDB item: keep the last, as the table does.
    by_key = {(g.minute, g.object_type, g.session): g for g in goods}
    return list(by_key.values())


@FUZZ
@given(
    good_items=st.lists(goods, max_size=12),
    bad_minutes=st.lists(broken_minute_items(), max_size=8),
    bad_rollups=st.lists(broken_rollup_items(), max_size=3),
)
def test_bad_history_items_are_skipped_counted_and_change_no_figure(
    world: World, good_items: list[Good], bad_minutes: list[dict[str, Any]], bad_rollups: list[dict[str, Any]]
) -> None:
    # Given
    world.clear()
    good_items = _unique(good_items)
    world.put([g.item() for g in good_items] + bad_minutes + bad_rollups)

    # When
    result, published = world.run()

    # Then every bad item is counted once, and nothing else
    assert result["history_items_skipped"] == len(bad_minutes) + len(bad_rollups)
    assert result["minute_items_read"] == len(good_items)
    for label in ("5m", "1h"):
        for object_type in [*OBJECT_TYPES, ALL_OBJECT_TYPES]:
            values, failed, items = _expected_window(good_items, label, object_type)
            if not items and object_type != ALL_OBJECT_TYPES:
                continue
            assert window(published, SYNC_LATENCY_COUNT, label, object_type) == len(values)
            assert window(published, RECORDS_SYNCED_IN_WINDOW, label, object_type) == len(values)
            assert window(published, RECORDS_FAILED_IN_WINDOW, label, object_type) == failed
            for pct in PERCENTILES:
                assert window(published, SYNC_LATENCY_PERCENTILES[pct], label, object_type) == percentile(values, pct)
    # and the raw distribution of each settled minute holds exactly the good values
    last_settled = CURRENT - timedelta(minutes=3)
    settled = Counter(float(v) for g in good_items if g.minute <= last_settled for v in g.sync_ms)
    assert distribution(published, ALL_OBJECT_TYPES) == settled


# --- items that parse, then would break the run (found by fuzzing, fixed) -----------------------------------


def test_a_rollup_with_an_absurd_bucket_index_is_skipped_not_fatal(world: World) -> None:
    world.clear()
    hour = floor_hour(CURRENT) - 2 * HOUR
    item = {
        "pk": {"S": ROLLUP_PK},
        "sk": {"S": f"{hour_key(hour)}#Account"},
        "type": {"S": "hour_rollup"},
        "hour": {"S": hour_key(hour)},
        "object_type": {"S": "Account"},
        "written": {"N": "1"},
        "failed": {"N": "0"},
        "waiting": {"N": "0"},
        "rel_error": {"N": "0.01"},
        "sync_hist": {"B": array("i", [2**31 - 1, 1]).tobytes()},
        "sync_count": {"N": "1"},
        "sync_zero": {"N": "0"},
        "e2e_count": {"N": "0"},
    }
    world.put([item])

    result, _ = world.run()

    assert result["history_items_skipped"] == 1


def test_a_latency_beyond_cloudwatch_range_is_skipped_not_fatal(world: World) -> None:
    world.clear()
    item = Good(CURRENT - timedelta(minutes=2), "Account", "deadbeef", [100], [100], 0, 0).item()
    item["sync_ms"] = {"L": [{"N": "1E+120"}]}
    world.put([item])

    result, _ = world.run()

    assert result["history_items_skipped"] == 1
