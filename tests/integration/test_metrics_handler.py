"""The metrics handler against moto in-process: history written in the sync function's shape, a fixed clock,
and what CloudWatch received."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]

from functions.metrics import app
from nrtsync.adapters.aws.api_usage import DynamoApiUsageStore
from nrtsync.adapters.aws.cloudwatch import CloudWatchPublisher
from nrtsync.adapters.aws.history_reader import DynamoMetricsHistory
from nrtsync.adapters.aws.tables import ROLLUP_PK
from nrtsync.domain.latency import percentile
from nrtsync.observability.names import METRIC_NAMES
from nrtsync.services.metrics.service import MetricsService
from nrtsync.services.metrics.settings import MetricsSettings
from tests.support.lambda_context import FakeLambdaContext
from tests.support.sync_world import create_tables

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
NAMESPACE = "NrtSyncTest"
HISTORY = "sync-history"
STATE = "sync-state"
NOW = datetime(2025, 6, 2, 10, 37, 20, tzinfo=UTC)
EVENT = json.loads((Path(__file__).parents[2] / "events" / "scheduled_metrics.json").read_text())


@dataclass
class Minute:
    at: datetime
    object_type: str
    session: str
    sync_ms: list[int]
    e2e_ms: list[int]
    failed: int = 0
    waiting: int = 0


def minute_item(m: Minute) -> dict[str, Any]:
    key = m.at.strftime("%Y-%m-%dT%H:%M")
    return {
        "pk": {"S": f"MINUTE#{key}"},
        "sk": {"S": f"{m.object_type}#{m.session}"},
        "type": {"S": "minute"},
        "object_type": {"S": m.object_type},
        "minute": {"S": key},
        "session_id": {"S": m.session},
        "written": {"N": str(len(m.sync_ms))},
        "failed": {"N": str(m.failed)},
        "waiting": {"N": str(m.waiting)},
        "superseded": {"N": "0"},
        "stale": {"N": "0"},
        "sync_ms": {"L": [{"N": str(v)} for v in m.sync_ms]},
        "e2e_ms": {"L": [{"N": str(v)} for v in m.e2e_ms]},
        "api_calls": {"N": "1"},
        "expires_at": {"N": str(int((m.at + timedelta(days=30)).timestamp()))},
    }


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_minutes() -> list[Minute]:
    rng = random.Random(7)  # noqa: S311 - reproducible test data

    def minute(when: str, object_type: str, n: int, failed: int = 0, waiting: int = 0) -> Minute:
        sync = [rng.randint(200, 90_000) for _ in range(n)]
        return Minute(
            at(when),
            object_type,
            f"s-{when}-{object_type}",
            sync,
            [s + rng.randint(0, 60_000) for s in sync],
            failed,
            waiting,
        )

    return [
        # 5m window [10:32, 10:37)
        minute("2025-06-02T10:33", "Account", 40, failed=2),
        minute("2025-06-02T10:34", "Invoice", 25, waiting=3),
        minute("2025-06-02T10:35", "Account", 30),
        minute("2025-06-02T10:36", "Subscription", 12),
        # the minute in progress: in no window
        minute("2025-06-02T10:37", "Account", 9),
        # 1h window [09:37, 10:37); 09:40 is also in the rolled hour 09
        minute("2025-06-02T09:40", "Invoice", 50, failed=1),
        minute("2025-06-02T10:10", "Account", 60),
        # hour 09 before the 1h window: rolled, 24h and 7d only
        minute("2025-06-02T09:20", "Account", 70),
        # 24h starts at 2025-06-01T11:00 (first whole hour inside it)
        minute("2025-06-01T15:05", "Payment", 80),
        minute("2025-06-01T10:50", "Account", 33),  # just before the 24h's first hour: 7d only
        minute("2025-05-30T12:00", "Invoice", 90),
        minute("2025-05-26T10:59", "Account", 20),  # before the 7d's first hour (2025-05-26T11:00)
        minute("2025-05-20T08:00", "Account", 20),
    ]


DATA_HOURS = {at("2025-06-02T09:00"), at("2025-06-01T15:00"), at("2025-06-01T10:00"), at("2025-05-30T12:00")}


@dataclass
class Run:
    result: dict[str, Any]
    data: list[Any]  # what this run added to moto's CloudWatch backend

    def values(self, name: str, **dims: str) -> list[float]:
        wanted = sorted(dims.items())
        return [
            d.value for d in self.data if d.name == name and sorted((x.name, x.value) for x in d.dimensions) == wanted
        ]

    def value(self, name: str, **dims: str) -> float:
        values = self.values(name, **dims)
        assert len(values) == 1, (name, dims, values)
        return values[0]


@dataclass
class Scenario:
    minutes: list[Minute]
    first: Run  # at NOW, rolls the closed hours
    retry: Run  # at NOW again
    next_minute: Run  # at NOW + 1 min, after a rolled hour's minute items expired
    rollup_keys: list[str]
    listed_metrics: list[Any]


def _malformed_items(minutes: list[Minute]) -> list[dict[str, Any]]:
    good = minute_item(minutes[0])  # 5m window
    return [
        {**good, "sk": {"S": "Account#bad-1"}, "sync_ms": {"L": [{"S": "12"}]}},
        {k: v for k, v in good.items() if k != "object_type"} | {"sk": {"S": "Account#bad-2"}},
        {**good, "sk": {"S": "Account#bad-3"}, "written": {"N": "-4"}},
        # in hour 09, rolled on the first run
        {**minute_item(minutes[7]), "sk": {"S": "Account#bad-4"}, "e2e_ms": {"S": "1,2"}},
    ]


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    # moto's DynamoDB answers a Query in ~20 ms, so the runs happen once and the tests read what they did.
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        backend = cloudwatch_backends[DEFAULT_ACCOUNT_ID][REGION]
        create_tables(dynamodb, state=STATE, history=HISTORY)
        # Given the minute summaries the sync function wrote, some malformed items, and the org's API usage
        minutes = make_minutes()
        for item in [minute_item(m) for m in minutes] + _malformed_items(minutes):
            dynamodb.put_item(TableName=HISTORY, Item=item)
        dynamodb.put_item(
            TableName=STATE,
            Item={
                "pk": {"S": "ORG#API_USAGE"},
                "used": {"N": "91500"},
                "limit": {"N": "100000"},
                "percent": {"N": "91.5"},
                "observed_at": {"S": (NOW - timedelta(minutes=2)).isoformat(timespec="milliseconds")},
            },
        )
        history = DynamoMetricsHistory(HISTORY, client=dynamodb, read_concurrency=4)
        # and a history that has been running: every empty hour of the 7-day window was already rolled
        hour = at("2025-05-26T11:00")
        while hour <= at("2025-06-02T09:00"):
            if hour not in DATA_HOURS:
                history.write_rollups(hour, {}, skipped=0, expires_at=0)
            hour += timedelta(hours=1)
        settings = MetricsSettings.from_env(
            {
                "SYNC_HISTORY_TABLE": HISTORY,
                "SYNC_STATE_TABLE": STATE,
                "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
                # The per-object-type windows are opt-in since issue 13 (their custom metrics cost); checked here.
                "WINDOW_METRICS_BY_OBJECT_TYPE": "true",
            }
        )
        clock = [NOW]
        app.service.use(
            MetricsService(
                settings,
                history=history,
                api_usage=DynamoApiUsageStore(STATE, client=dynamodb),
                publisher=CloudWatchPublisher(client=cloudwatch),
                clock=lambda: clock[0],
            )
        )

        def run() -> Run:
            before = len(backend.metric_data)
            result = app.lambda_handler(EVENT, FakeLambdaContext(function_name="metrics"))
            return Run(result=result, data=list(backend.metric_data[before:]))

        # When the handler runs, is retried at the same time, and runs again the next minute after the minute
        # items of a rolled hour expired
        first = run()
        retry = run()
        dynamodb.delete_item(
            TableName=HISTORY,
            Key={"pk": {"S": "MINUTE#2025-06-01T15:05"}, "sk": {"S": "Payment#s-2025-06-01T15:05-Payment"}},
        )
        clock[0] = NOW + timedelta(minutes=1)
        next_minute = run()
        rollups = dynamodb.query(
            TableName=HISTORY,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
            ExpressionAttributeValues={":pk": {"S": ROLLUP_PK}, ":h": {"S": "2025-06-01T15"}},
        )["Items"]
        listed = cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
        yield Scenario(minutes, first, retry, next_minute, sorted(i["sk"]["S"] for i in rollups), listed)
        app.service.use(None)


def window_values(minutes: list[Minute], start: datetime, end: datetime, object_type: str = "All") -> list[Minute]:
    return [m for m in minutes if start <= m.at < end and object_type in ("All", m.object_type)]


def flat(minutes: list[Minute], attr: str) -> list[int]:
    return [v for m in minutes for v in getattr(m, attr)]


def test_exact_windows_apply_the_rule_to_every_value(scenario: Scenario) -> None:
    run = scenario.first
    end = at("2025-06-02T10:37")
    for label, length in (("5m", timedelta(minutes=5)), ("1h", timedelta(hours=1))):
        for object_type in ("All", "Account", "Invoice"):
            chosen = window_values(scenario.minutes, end - length, end, object_type)
            dims = {"Window": label, "ObjectType": object_type}
            for pct in (50, 90, 99):
                assert run.value(f"SyncLatencyP{pct}", **dims) == percentile(flat(chosen, "sync_ms"), pct)
                assert run.value(f"EndToEndLatencyP{pct}", **dims) == percentile(flat(chosen, "e2e_ms"), pct)
            assert run.value("SyncLatencyCount", **dims) == len(flat(chosen, "sync_ms"))
            assert run.value("EndToEndLatencyCount", **dims) == len(flat(chosen, "e2e_ms"))
            assert run.value("RecordsSyncedInWindow", **dims) == len(flat(chosen, "sync_ms"))
            assert run.value("RecordsFailedInWindow", **dims) == sum(m.failed for m in chosen)
            assert run.value("RecordsWaitingInWindow", **dims) == sum(m.waiting for m in chosen)
    assert run.value("RecordsFailedInWindow", Window="5m", ObjectType="All") == 2
    assert run.value("RecordsWaitingInWindow", Window="5m", ObjectType="Invoice") == 3


@pytest.mark.parametrize(("label", "start"), [("24h", at("2025-06-01T11:00")), ("7d", at("2025-05-26T11:00"))])
def test_long_windows_are_rollups_plus_recent_minutes_within_the_error_bound(
    scenario: Scenario, label: str, start: datetime
) -> None:
    run = scenario.first
    assert run.result["hours_rolled"] == len(DATA_HOURS)
    assert run.result["hours_not_rolled"] == 0
    end = at("2025-06-02T10:37")
    for object_type in ("All", "Account", "Invoice", "Payment"):
        chosen = window_values(scenario.minutes, start, end, object_type)
        dims = {"Window": label, "ObjectType": object_type}
        assert run.value("RecordsSyncedInWindow", **dims) == len(flat(chosen, "sync_ms"))
        assert run.value("SyncLatencyCount", **dims) == len(flat(chosen, "sync_ms"))
        for pct in (50, 90, 99):
            for name, attr in (("SyncLatency", "sync_ms"), ("EndToEndLatency", "e2e_ms")):
                exact = percentile(flat(chosen, attr), pct)
                assert exact is not None
                assert run.value(f"{name}P{pct}", **dims) == pytest.approx(exact, rel=0.01)


def test_rollups_are_written_once_and_read_instead_of_minutes(scenario: Scenario) -> None:
    assert scenario.rollup_keys == ["2025-06-01T15", "2025-06-01T15#Payment"]
    assert scenario.retry.result["hours_rolled"] == 0
    assert scenario.next_minute.result["hours_rolled"] == 0
    # the Payment minute items are gone, yet 24h and 7d still count them: from the rollup
    assert scenario.next_minute.value("RecordsSyncedInWindow", Window="24h", ObjectType="Payment") == 80
    first_7d = scenario.first.value("RecordsSyncedInWindow", Window="7d", ObjectType="All")
    completed_minute = len(scenario.minutes[4].sync_ms)  # 10:37, in progress on the first run
    assert (
        scenario.next_minute.value("RecordsSyncedInWindow", Window="7d", ObjectType="All")
        == first_7d + completed_minute
    )


def test_raw_distributions_are_published_once_per_minute(scenario: Scenario) -> None:
    # The first run publishes every settled minute (up to 10:34 with a 90 s settle time) loaded: 09:37..10:34
    settled = window_values(scenario.minutes, at("2025-06-02T09:37"), at("2025-06-02T10:35"))
    assert sorted(scenario.first.values("SyncLatency", ObjectType="All")) == sorted(flat(settled, "sync_ms"))
    invoices = [m for m in settled if m.object_type == "Invoice"]
    assert sorted(scenario.first.values("EndToEndLatency", ObjectType="Invoice")) == sorted(flat(invoices, "e2e_ms"))
    assert scenario.first.result["distribution_minutes_published"] == 58
    # the retry publishes none again
    assert scenario.retry.result["distribution_minutes_published"] == 0
    assert scenario.retry.values("SyncLatency", ObjectType="All") == []
    # the next minute's run adds only the newly settled minute 10:35
    assert scenario.next_minute.result["distribution_minutes_published"] == 1
    newly = window_values(scenario.minutes, at("2025-06-02T10:35"), at("2025-06-02T10:36"))
    assert sorted(scenario.next_minute.values("SyncLatency", ObjectType="All")) == sorted(flat(newly, "sync_ms"))
    datum = next(d for d in scenario.first.data if d.name == "SyncLatency")
    assert datum.unit == "Milliseconds"
    assert datum.timestamp.replace(tzinfo=UTC) <= at("2025-06-02T10:34")


def test_malformed_items_are_skipped_and_counted(scenario: Scenario) -> None:
    # three in the recent minutes, one in the hour rolled on the first run
    assert scenario.first.result["history_items_skipped"] == 4
    assert scenario.retry.result["history_items_skipped"] == 3
    # and the figures are those of the good items (checked in detail above)
    chosen = window_values(scenario.minutes, at("2025-06-02T10:32"), at("2025-06-02T10:37"))
    assert scenario.first.value("SyncLatencyP50", Window="5m", ObjectType="All") == percentile(
        flat(chosen, "sync_ms"), 50
    )


def test_api_usage_is_published_without_window(scenario: Scenario) -> None:
    assert scenario.first.value("ApiUsagePercent") == 91.5
    datum = next(d for d in scenario.first.data if d.name == "ApiUsagePercent")
    assert datum.unit == "Percent"
    assert datum.dimensions == []


def test_every_published_name_and_dimension_is_declared(scenario: Scenario) -> None:
    listed = scenario.listed_metrics
    names = {m["MetricName"] for m in listed}
    assert names == set(METRIC_NAMES)
    for metric in listed:
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        if metric["MetricName"] in {"SyncLatency", "EndToEndLatency"}:
            assert set(dims) == {"ObjectType"}
        elif metric["MetricName"] == "ApiUsagePercent":
            assert dims == {}
        else:
            assert set(dims) == {"Window", "ObjectType"}
            assert dims["Window"] in {"5m", "1h", "24h", "7d"}
    object_types = {d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == "ObjectType"}
    assert object_types == {"All", "Account", "Invoice", "Payment", "Subscription"}


def test_handler_returns_the_run_summary(scenario: Scenario) -> None:
    result = scenario.first.result
    assert result["minute"] == "2025-06-02T10:37"
    assert result["object_types"] == ["Account", "Invoice", "Payment", "Subscription"]
    # moto stores one datum per value of a Values/Counts distribution, so only the window data compare 1:1
    window_data = [d for d in scenario.first.data if d.name not in {"SyncLatency", "EndToEndLatency"}]
    assert result["metric_data_published"] > len(window_data)
