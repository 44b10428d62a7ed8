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
from nrtsync.mapping import cached_mapping
from nrtsync.zuora_dates import parse_zuora_datetime

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


def _result(*, calls: int, present: int = 100_000, reconcile_calls: int = 0, queued: int = 0) -> dict[str, Any]:
    return {
        "backfill": {"records": 100_000, "salesforce_api_calls": calls, "in_salesforce": present},
        "reconcile": {"salesforce_api_calls": reconcile_calls, "queued": queued, "read": 100_000},
    }


def test_the_backfill_target_is_one_call_per_190_records_with_every_record_there() -> None:
    limit = int(100_000 * TARGET_CALLS_PER_RECORD)  # 526 calls
    assert targets(_result(calls=limit))["backfill_api_calls_per_record"]
    assert not targets(_result(calls=limit + 1))["backfill_api_calls_per_record"]
    assert not targets(_result(calls=500, present=99_999))["backfill_api_calls_per_record"]


def test_the_reconcile_target_is_zero_calls_and_nothing_queued() -> None:
    assert targets(_result(calls=500))["reconcile_in_step_api_calls"]
    assert not targets(_result(calls=500, reconcile_calls=1))["reconcile_in_step_api_calls"]
    assert not targets(_result(calls=500, queued=3))["reconcile_in_step_api_calls"]
