"""The end-to-end bench with the Zuora stand-in's own callouts: its helpers, its rows in BENCHMARKS.md, and a tiny
run through the whole local stack (a few changes) that must write every change."""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bench import report
from bench.workload import MIX, account_ids
from bench.zuora_callouts_bench import (
    as_zuora,
    bench_e2e_zuora,
    changed_records,
    delivery_legs_ms,
    delivery_summary,
    keeps_rate,
    seed_rows,
    targets,
)
from nrtsync.domain.mapping import cached_mapping
from nrtsync.domain.zuora_dates import parse_zuora_datetime

PARENTS = account_ids(4)


def _row(notification: str, attempt: int, status: int | None, **extra: Any) -> dict[str, Any]:
    row = {"notification_id": notification, "attempt": attempt, "attempt_limit": 4, "status": status, "error": ""}
    return row | {"delivered": status == 200} | extra


def test_changed_records_are_distinct_in_the_batch_mix_and_even_a_few_mix_the_four_objects() -> None:
    changes = changed_records(400, PARENTS)

    assert len({change.record_id for change in changes}) == 400
    assert Counter(change.object_type for change in changes) == {k: 2 * v for k, v in MIX}
    assert {change.object_type for change in changes[:4]} == {"Account", "Subscription", "Invoice", "Payment"}
    assert all("" not in change.fields.values() for change in changes)


def test_seed_rows_hold_every_parent_and_the_previous_version_of_every_changed_record() -> None:
    changes = changed_records(60, PARENTS)
    when = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)

    rows = seed_rows(changes, PARENTS, updated=when)

    mapping = cached_mapping(None)
    seeded = {(o, r["Id"]): r for o, records in rows.items() for r in records}
    assert next(iter(rows)) == "Account"
    assert {("Account", p) for p in PARENTS} <= set(seeded)
    for change in changes:
        before = seeded[(change.object_type, change.record_id)]
        assert before["UpdatedDate"] == when.isoformat(timespec="milliseconds")
        assert set(before) <= {"Id", "UpdatedDate", *mapping.objects[change.object_type].fields, "AccountId"}
        assert before | change.fields != before  # the edit changes the record
        if change.object_type != "Account":
            assert ("Account", before["AccountId"]) in seeded


def test_delivery_summary_counts_attempts_retries_and_recorded_challenges() -> None:
    history = [
        _row("n1", 1, 503, challenged=True),
        _row("n1", 2, 200, challenged=True),
        _row("n2", 1, None, challenged=False),
        _row("n3", 1, 200, challenged=True),
        _row("n4", 1, None, challenged=False, error="cannot render"),
        *(_row("n5", attempt, 500, challenged=True) for attempt in (1, 2, 3, 4)),
    ]

    summary = delivery_summary(history)

    assert summary == {
        "attempts": 9,
        "notifications": 5,
        "delivered": 2,
        "given_up": 2,  # n4 could not be sent, n5 used its last attempt; n2 waits for its retry
        "retries": 4,
        "attempt_statuses": {"200": 2, "500": 4, "503": 1, "no answer": 1, "not sent": 1},
        "challenges": 7,
    }


def test_delivery_summary_says_nothing_of_challenges_a_history_does_not_record() -> None:
    assert delivery_summary([_row("n1", 1, 200)])["challenges"] is None
    assert delivery_summary([])["challenges"] is None


def test_a_change_is_named_as_the_history_names_it_a_subscription_by_its_number() -> None:
    keys = {change.object_type: change.key for change in changed_records(4, PARENTS)}
    ids = {change.object_type: change.record_id for change in changed_records(4, PARENTS)}

    assert keys["Subscription"] == ("Subscription", "A-S00000040")
    assert keys["Invoice"] == ("Invoice", ids["Invoice"])


def test_as_zuora_holds_a_date_time_where_zuora_has_one_and_no_empty_values() -> None:
    fields = {"PostedDate": "2026-01-05", "InvoiceDate": "2026-01-05", "Comments": ""}

    held = as_zuora("Invoice", fields)

    assert held == {"PostedDate": "2026-01-05T09:00:00.000-08:00", "InvoiceDate": "2026-01-05"}
    posted = parse_zuora_datetime(held["PostedDate"]).astimezone(ZoneInfo("America/Los_Angeles"))
    assert posted.date().isoformat() == fields["PostedDate"]  # the date the hand-made callout carries


def test_keeps_rate_compares_deliveries_per_second_with_the_change_rate() -> None:
    assert keeps_rate(600, 41.0, 15.0)  # 14.6/s
    assert not keeps_rate(600, 60.0, 15.0)  # 10/s
    with pytest.raises(ValueError, match="positive"):
        keeps_rate(1, 0.0, 15.0)


def test_delivery_legs_are_e2e_less_sync() -> None:
    assert sorted(delivery_legs_ms({("Account", "a"): (2100, 2050), ("Invoice", "i"): (900, 600)})) == [50, 300]


def test_targets_judge_the_figure_on_its_own() -> None:
    assert targets({"e2e_p50_s": 2.0, "e2e_p90_s": 3.0}) == {
        "e2e_zuora_p50": True,
        "e2e_zuora_p90": True,
        "e2e_zuora_p90_slo": True,
    }
    assert targets({"e2e_p50_s": 60.0, "e2e_p90_s": 30.0}) == {
        "e2e_zuora_p50": True,
        "e2e_zuora_p90": False,
        "e2e_zuora_p90_slo": True,
    }
    assert set(targets({"e2e_p50_s": None, "e2e_p90_s": None}).values()) == {None}


def test_benchmarks_md_shows_the_zuora_rows_beside_the_hand_made_figure() -> None:
    results = json.loads(report.RESULTS.read_text())
    assert "e2e_zuora" in results

    block = report.render(results)

    lines = block.splitlines()
    hand_made = next(i for i, line in enumerate(lines) if line.startswith("| `e2e_p90_s`"))
    assert lines[hand_made + 1].startswith("| `e2e_zuora_p50_s`")
    assert lines[hand_made + 2].startswith("| `e2e_zuora_p90_s` |")
    assert "| < 10 s |" in lines[hand_made + 2]
    assert f"measured {results['e2e_zuora']['measured_at']}" in block


@pytest.mark.parametrize(("kept", "words"), [(True, "stand-in kept"), (False, "stand-in did not keep")])
def test_benchmarks_md_says_whether_the_senders_kept_the_rate(kept: bool, words: str) -> None:
    results = copy.deepcopy(json.loads(report.RESULTS.read_text()))
    results["e2e_zuora"]["standin"]["keeps_rate"] = kept

    block = report.render(results)

    assert words in block
    sender = next(line for line in block.splitlines() if "the stand-in's sender" in line)
    assert sender.endswith(", yes |" if kept else ", **no** |")


def test_benchmarks_md_leaves_the_rows_out_without_the_section() -> None:
    results = copy.deepcopy(json.loads(report.RESULTS.read_text()))
    results.pop("e2e_zuora", None)

    assert "e2e_zuora" not in report.render(results)


@pytest.mark.e2e
def test_a_tiny_run_writes_every_change_the_stand_in_called_out() -> None:
    # The first four changes are one of each object type.
    result = bench_e2e_zuora(rate_per_second=4.0, seconds=1.0, latency_ms=0)

    standin = result["standin"]
    assert result["changes"] == 4
    assert result["edit_statuses"] == {"200": 4}
    assert result["changes_written"] == result["written"] == 4
    assert standin["notifications"] == standin["delivered"] == 4
    assert standin["given_up"] == 0
    assert standin["attempts"] >= 4
    assert standin["preemptive"] is False  # zuora setup's callouts: credentials after the challenge
    assert standin["challenges"] == standin["attempts"]
    assert standin["workers"] >= 1
    assert 0 < result["e2e_p50_s"] <= result["e2e_p90_s"] <= result["e2e_max_s"]
    assert 0 < result["delivery_ms_p50"] <= result["delivery_ms_p90"]
    assert result["delivery_ms_p90"] < result["e2e_max_s"] * 1000
    assert sum(result["batch_sizes"]["all"]) >= 4
    assert set(targets(result)) == {"e2e_zuora_p50", "e2e_zuora_p90", "e2e_zuora_p90_slo"}
