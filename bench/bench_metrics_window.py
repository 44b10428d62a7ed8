"""Benchmark (not a test): one metrics run over 7 days of 1,000,000 synced records a day.

The data is generated directly in the shape the storage design keeps: hourly rollups for every closed hour of
the 7-day window, plus the minute summaries of the last ~75 minutes (sessions of 200 records split across five
object types). An in-memory stand-in of the DynamoDB client serves the raw items, so the run includes item
parsing, histogram decoding and merging, the percentiles and the PutMetricData chunking; only the network is
missing. Prints one JSON line.

    .venv/bin/python bench/bench_metrics_window.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from nrtsync.adapters.aws.api_usage import DynamoApiUsageStore
from nrtsync.adapters.aws.cloudwatch import CloudWatchPublisher
from nrtsync.adapters.aws.history_reader import DynamoMetricsHistory, rollup_item
from nrtsync.adapters.aws.tables import ROLLUP_PK
from nrtsync.app.metrics import build_metrics
from nrtsync.domain.latency import LatencyHistogram
from nrtsync.ports.metrics import HOUR, MINUTE, HourRollup, RecordCounts, ceil_hour, floor_hour, minute_key
from nrtsync.services.metrics.settings import MetricsSettings
from nrtsync_fakes.metrics import DiscardingCloudWatch, InMemoryDynamoDB

RECORDS_PER_DAY = 1_000_000
SESSION_RECORDS = 200
OBJECT_TYPES = ("Account", "Subscription", "Invoice", "Payment", "InvoiceItem")
NOW = datetime(2025, 6, 2, 10, 37, 20, tzinfo=UTC)


def latency(rng: random.Random) -> int:
    # log-normal around ~20 s with a long tail, as queue waits and Salesforce calls pile up
    return max(1, int(rng.lognormvariate(9.9, 0.9)))


def populate(db: InMemoryDynamoDB, rng: random.Random, *, roll_latest: bool) -> dict[str, int]:
    per_minute = RECORDS_PER_DAY / 1_440
    per_hour_type = int(RECORDS_PER_DAY / 24 / len(OBJECT_TYPES))
    current = NOW.replace(second=0, microsecond=0)
    last_rollable = floor_hour(NOW - timedelta(minutes=15) - HOUR)
    first_hour = ceil_hour(current - timedelta(days=7))
    # A few templates of a real hour's histograms, reused: generating 7 M values would dominate the bench.
    templates: list[tuple[LatencyHistogram, LatencyHistogram]] = []
    for _ in range(6):
        sync, e2e = LatencyHistogram(), LatencyHistogram()
        values = [latency(rng) for _ in range(per_hour_type)]
        sync.extend(values)
        e2e.extend(v + rng.randint(0, 30_000) for v in values)
        templates.append((sync, e2e))
    hours = 0
    hour = first_hour
    latest_rolled = last_rollable - HOUR if roll_latest else last_rollable
    while hour <= latest_rolled:
        for n, object_type in enumerate(OBJECT_TYPES):
            sync, e2e = templates[(hours + n) % len(templates)]
            rollup = HourRollup(
                hour=hour,
                object_type=object_type,
                counts=RecordCounts(written=per_hour_type, failed=3, waiting=5),
                minute_items=60 * 4,
                sync=sync,
                e2e=e2e,
            )
            db.put_item(TableName="h", Item=rollup_item(rollup, 0))
        db.put_item(
            TableName="h",
            Item={
                "pk": {"S": ROLLUP_PK},
                "sk": {"S": hour.strftime("%Y-%m-%dT%H")},
                "type": {"S": "hour_rollup_marker"},
                "hour": {"S": hour.strftime("%Y-%m-%dT%H")},
            },
        )
        hours += 1
        hour += HOUR
    minute = min(current - HOUR, latest_rolled + HOUR)
    minute_items = records = 0
    carry = 0.0
    while minute <= current:
        carry += per_minute
        sessions = int(carry // SESSION_RECORDS)
        carry -= sessions * SESSION_RECORDS
        for s in range(sessions):
            for object_type in OBJECT_TYPES:
                n = SESSION_RECORDS // len(OBJECT_TYPES)
                values = [latency(rng) for _ in range(n)]
                key = minute_key(minute)
                db.put_item(
                    TableName="h",
                    Item={
                        "pk": {"S": f"MINUTE#{key}"},
                        "sk": {"S": f"{object_type}#{key}-{s}"},
                        "type": {"S": "minute"},
                        "object_type": {"S": object_type},
                        "minute": {"S": key},
                        "session_id": {"S": f"{key}-{s}"},
                        "written": {"N": str(n)},
                        "failed": {"N": "0"},
                        "waiting": {"N": "1"},
                        "superseded": {"N": "0"},
                        "stale": {"N": "0"},
                        "sync_ms": {"L": [{"N": str(v)} for v in values]},
                        "e2e_ms": {"L": [{"N": str(v + rng.randint(0, 30_000))} for v in values]},
                        "api_calls": {"N": "1"},
                        "expires_at": {"N": "0"},
                    },
                )
                minute_items += 1
                records += n
        minute += MINUTE
    db.put_item(
        TableName="s",
        Item={
            "pk": {"S": "ORG#API_USAGE"},
            "percent": {"N": "42.5"},
            "observed_at": {"S": (NOW - timedelta(minutes=1)).isoformat()},
        },
    )
    return {
        "rollup_hours": hours,
        "rollup_items": hours * len(OBJECT_TYPES),
        "minute_items": minute_items,
        "minute_records": records,
    }


def one_run(roll_latest: bool, seed: int) -> tuple[float, int, dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    db = InMemoryDynamoDB()
    shape = populate(db, rng, roll_latest=roll_latest)
    settings = MetricsSettings.from_env(
        {"SYNC_HISTORY_TABLE": "h", "SYNC_STATE_TABLE": "s", "POWERTOOLS_METRICS_NAMESPACE": "Bench"}
    )
    cloudwatch = DiscardingCloudWatch()
    service = build_metrics(
        settings,
        history=DynamoMetricsHistory("h", client=db, read_concurrency=1),  # type: ignore[arg-type]
        api_usage=DynamoApiUsageStore("s", client=db),  # type: ignore[arg-type]
        publisher=CloudWatchPublisher(client=cloudwatch),  # type: ignore[arg-type]
        clock=lambda: NOW,
    )
    started = time.perf_counter()
    result = service.run()
    elapsed = time.perf_counter() - started
    info = shape | {
        "queries": db.queries,
        "put_metric_data_calls": cloudwatch.calls,
        "metric_data": cloudwatch.data,
        "hours_rolled": result.hours_rolled,
    }
    return elapsed, db.queries, info


def measure(roll_latest: bool, runs: int) -> dict[str, Any]:
    times = []
    info: dict[str, Any] = {}
    for n in range(runs):
        elapsed, _, info = one_run(roll_latest, seed=n)
        times.append(elapsed)
    # Peak memory of the run itself (tracemalloc slows it down, so it is a separate run).
    rng = random.Random(99)  # noqa: S311
    db = InMemoryDynamoDB()
    populate(db, rng, roll_latest=roll_latest)
    settings = MetricsSettings.from_env(
        {"SYNC_HISTORY_TABLE": "h", "SYNC_STATE_TABLE": "s", "POWERTOOLS_METRICS_NAMESPACE": "Bench"}
    )
    service = build_metrics(
        settings,
        history=DynamoMetricsHistory("h", client=db, read_concurrency=1),  # type: ignore[arg-type]
        api_usage=DynamoApiUsageStore("s", client=db),  # type: ignore[arg-type]
        publisher=CloudWatchPublisher(client=DiscardingCloudWatch()),  # type: ignore[arg-type]
        clock=lambda: NOW,
    )
    tracemalloc.start()
    service.run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "peak_traced_mib": round(peak / 2**20, 1),
    } | info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import logging  # noqa: PLC0415 - only to quiet the run's INFO log lines in the bench output

    logging.getLogger("nrtsync").setLevel(logging.WARNING)
    from nrtsync.observability import logger  # noqa: PLC0415

    logger.setLevel("WARNING")
    report = {
        "bench": "metrics_window",
        "records_per_day": RECORDS_PER_DAY,
        "days": 7,
        "python": sys.version.split()[0],
        "steady_run": measure(roll_latest=False, runs=args.runs),
        "run_that_rolls_an_hour": measure(roll_latest=True, runs=args.runs),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
