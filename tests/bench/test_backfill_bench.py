"""The backfill bench's pure helpers: the record mix it seeds in Zuora and the arithmetic of its targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.backfill_bench import (
    TARGET_CALLS_PER_RECORD,
    calls_per_record,
    pause_reason_kind,
    record_counts,
    targets,
    zuora_records,
)
from bench.report import BACKFILL_END, BACKFILL_START, render_backfill
from nrtsync.domain.mapping import cached_mapping
from nrtsync.domain.zuora_dates import parse_zuora_datetime

FIRST = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
LAST = FIRST + timedelta(hours=3)


@pytest.mark.parametrize("total", [4, 10, 999, 10_001, 100_000])
def test_record_counts_add_up_to_the_total_in_the_2_3_3_2_mix_parents_first(total: int) -> None:
    counts = record_counts(total)
    assert sum(counts.values()) == total
    assert list(counts) == ["Account", "Subscription", "Invoice", "Payment"]
    assert all(n >= 1 for n in counts.values())
    assert abs(counts["Account"] - total * 0.2) < 1
    assert abs(counts["Invoice"] - total * 0.3) < 1


def test_record_counts_of_100000_are_exact() -> None:
    assert record_counts(100_000) == {"Account": 20_000, "Subscription": 30_000, "Invoice": 30_000, "Payment": 20_000}


def test_record_counts_refuse_fewer_records_than_objects() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        record_counts(3)


def test_zuora_records_are_distinct_mapped_and_every_child_points_at_a_seeded_account() -> None:
    found = zuora_records(1_000, first=FIRST, last=LAST)
    mapping = cached_mapping(None)
    accounts = {r["Id"] for r in found["Account"]}
    ids = [r["Id"] for records in found.values() for r in records]
    assert len(ids) == len(set(ids)) == 1_000
    for object_type, records in found.items():
        queried = {"Id", "UpdatedDate", *mapping.objects[object_type].fields, *mapping.objects[object_type].parents}
        for record in records:
            assert set(record) <= queried, object_type
            assert "" not in record.values()
            if object_type != "Account":
                assert record["AccountId"] in accounts
    stamps = [parse_zuora_datetime(r["UpdatedDate"]) for records in found.values() for r in records]
    assert min(stamps) == FIRST
    assert max(stamps) == LAST


def test_pause_reason_kind_drops_the_figures() -> None:
    assert pause_reason_kind("callout queue backlog 2310 > 600") == "callout queue backlog"
    assert pause_reason_kind("Salesforce API usage 81.0 % >= 80 %") == "Salesforce API usage"
    assert pause_reason_kind("the circuit breaker is open") == "the circuit breaker is open"


def test_calls_per_record_of_no_records_is_an_error() -> None:
    assert calls_per_record(500, 100_000) == 0.005
    with pytest.raises(ValueError, match="no records"):
        calls_per_record(1, 0)


def _result(
    *, calls: int, present: int = 100_000, reconcile_calls: int = 0, queued: int = 0, live: int = 0
) -> dict[str, Any]:
    return {
        "backfill": {"records": 100_000, "salesforce_api_calls": calls, "in_salesforce": present},
        "live_during_backfill": {"written": live},
        "reconcile": {"salesforce_api_calls": reconcile_calls, "queued": queued, "read": 100_000},
    }


def test_the_backfill_target_is_one_call_per_190_records_with_every_record_there() -> None:
    limit = int(100_000 * TARGET_CALLS_PER_RECORD)  # 526 calls
    assert targets(_result(calls=limit))["backfill_api_calls_per_record"]
    assert not targets(_result(calls=limit + 1))["backfill_api_calls_per_record"]
    assert not targets(_result(calls=500, present=99_999))["backfill_api_calls_per_record"]
    # Live callouts written in the same batches do not count: the target is the backfill's own records
    assert not targets(_result(calls=limit + 10, live=1_900))["backfill_api_calls_per_record"]


def test_the_reconcile_target_is_zero_calls_and_nothing_queued() -> None:
    assert targets(_result(calls=500))["reconcile_in_step_api_calls"]
    assert not targets(_result(calls=500, reconcile_calls=1))["reconcile_in_step_api_calls"]
    assert not targets(_result(calls=500, queued=3))["reconcile_in_step_api_calls"]


def _bench_section(*, calls: int) -> dict[str, Any]:
    live = {"rate_per_second": 2.0, "callouts": 40, "written": 40, "e2e_p50_s": 1.5, "e2e_p90_s": 2.4, "e2e_max_s": 3}
    section: dict[str, Any] = {
        "measured_at": "2026-12-02T00:30:00+00:00",
        "quick": False,
        "salesforce_latency_ms": 150,
        "machine": {"nproc": 2, "loadavg_start": [3.1, 2, 2], "loadavg_end": [2.9, 2, 2]},
        "backfill": {
            "records": 100_000,
            "records_by_object": record_counts(100_000),
            "in_salesforce": 100_000,
            "spot_checked": 40,
            "spot_check_differences": [],
            "seconds_until_drained": 2_000.0,
            "seconds_reading": 1_900.0,
            "records_per_second": 50.0,
            "salesforce_api_calls": calls,
            "api_calls_per_record": calls / 100_000,
            "records_per_api_call": 100_000 / calls,
            "zuora_calls": {"token": 1, "query": 4, "queryMore": 48},
            "sync_invocations": 510,
            "batch_size_p50": 200,
            "batch_size_p90": 200,
            "pauses": {"callout queue backlog": 120},
            "waited_s": 600.0,
            "max_queue_backlog": 600,
            "wait_seconds": 5,
        },
        "live_alone": live,
        "live_during_backfill": live | {"e2e_p50_s": 30.0, "e2e_p90_s": 45.0},
        "reconcile": {"read": 100_000, "queued": 0, "runs": 1, "salesforce_api_calls": 0, "seconds": 90.0},
    }
    section["reconcile"]["records_read_per_second"] = 1_111.1
    section["targets"] = targets({"backfill": section["backfill"], "reconcile": section["reconcile"]})
    return section


def test_the_generated_block_says_pass_or_fail_against_each_target() -> None:
    passing = render_backfill({"backfill": _bench_section(calls=510)})
    failing = render_backfill({"backfill": _bench_section(calls=600)})
    assert passing.startswith(BACKFILL_START)
    assert passing.endswith(BACKFILL_END)
    assert "| 1 per 196.1 | 1 per 190 or better | **PASS** |" in passing
    assert "| 1 per 166.7 | 1 per 190 or better | **FAIL** |" in failing
    # The blended figure (live callouts in the same batches) stands beside it, never judged
    assert "| 510 calls = 1 per 196.2 | (not a target) | |" in passing
    assert "| reconcile: Salesforce API calls | 0 | 0 | **PASS** |" in passing
    assert "30.0 s / 45.0 s" in passing
