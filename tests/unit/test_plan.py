"""The planner (``nrtsync plan``): allocation, batching model, recommendation, and bad input (issue 13, item 3)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nrtsync_cli import plan as planner
from nrtsync_cli.cli import run

ROOT = Path(__file__).resolve().parents[2]


def test_daily_allocation_by_edition() -> None:
    # Enterprise: 100,000 + 1,000 per licence (REFERENCE.md; Salesforce "API Request Limits and Allocations").
    assert planner.daily_allocation("enterprise", 250) == 350_000
    assert planner.daily_allocation("unlimited", 10) == 150_000
    assert planner.daily_allocation("developer", 99) == 15_000


def test_batch_size_grows_with_rate_and_window_and_stops_at_200() -> None:
    assert planner.batch_size(0.0, 10, 5) == 1.0
    assert planner.batch_size(1.0, 10, 5) == pytest.approx(3.0)  # 1 + 1/s * 10 s / 5 pollers
    assert planner.batch_size(1.0, 10, 1) == pytest.approx(11.0)
    assert planner.batch_size(1_000.0, 2, 5) == 200.0


def test_pollers_are_the_initial_five_capped_by_the_concurrency() -> None:
    assert planner.event_source_pollers(2) == 2
    assert planner.event_source_pollers(5) == 5
    assert planner.event_source_pollers(100) == 5


def test_calls_per_day_at_a_flat_rate_are_changes_over_batch_size() -> None:
    # 86,400 changes a day = 1/s; window 10 s, concurrency 5: batches of 3, so 28,800 calls.
    option = planner.evaluate(planner.Traffic(86_400, peak_share=1.0, peak_hours=24), 100_000, 10, 5)
    assert option.calls_per_day == pytest.approx(28_800)
    assert option.share_of_allocation == pytest.approx(0.288)


def test_a_longer_window_means_fewer_calls_and_more_latency() -> None:
    traffic = planner.Traffic(50_000)
    options = [planner.evaluate(traffic, 150_000, w, 5) for w in planner.WINDOWS]
    calls = [o.calls_per_day for o in options]
    p90 = [o.p90_s for o in options]
    assert calls == sorted(calls, reverse=True)
    assert p90 == sorted(p90)
    assert calls[0] > 2 * calls[-1]


def test_latency_of_a_lone_change_is_the_whole_window_plus_the_base() -> None:
    measured = planner.Measured(1.0, 2.0, 0.5, 0.01, "test")
    p50, p90 = planner.latency_seconds(0.0, 30, 5, measured)
    assert p50 == pytest.approx(31.0)
    assert p90 == pytest.approx(32.0)


def test_recommends_the_shortest_window_within_the_share() -> None:
    # A busy org with a small allocation: short windows spend too much of it.
    result = planner.plan(planner.Traffic(400_000), edition="enterprise", licences=50, max_share=0.2)
    assert result.recommended is not None
    chosen = result.recommended
    assert chosen.share_of_allocation <= 0.2
    shorter = [o for o in result.options if o.window_seconds < chosen.window_seconds]
    assert shorter
    assert all(o.share_of_allocation > 0.2 for o in shorter)


def test_no_recommendation_when_nothing_fits() -> None:
    result = planner.plan(planner.Traffic(3_000_000), edition="developer", licences=0, max_share=0.5)
    assert result.recommended is None
    assert "Bulk API" in result.reason


def test_concurrency_keeps_up_with_the_peak() -> None:
    traffic = planner.Traffic(5_000_000, peak_share=0.9, peak_hours=2)  # 625 changes/s at the peak
    result = planner.plan(traffic, edition="unlimited", licences=1_000, max_share=1.0)
    assert planner.throughput(result.concurrency, 200.0) >= traffic.peak_rate
    assert result.concurrency <= planner.SALESFORCE_LONG_REQUEST_LIMIT


def test_cli_plan_needs_no_stack_and_prints_a_recommendation(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    code = run(["plan", "--changes-per-day", "50000", "--licences", "200"], out=out)
    assert code == 0
    text = out.getvalue()
    assert "300,000 API calls per 24 h" in text
    assert "recommended: BatchingWindowSeconds=" in text


def test_cli_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    code = run(["plan", "--json", "--changes-per-day", "86400", "--licences", "0", "--peak-hours", "24"], out=out)
    data = json.loads(out.getvalue())
    assert code == 0
    assert data["allocation_per_day"] == 100_000
    assert data["recommended"]["window_seconds"] in planner.WINDOWS
    assert data["peak_rate_per_second"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--changes-per-day", "0", "--licences", "1"], "--changes-per-day"),
        (["--changes-per-day", "lots", "--licences", "1"], "--changes-per-day"),
        (["--changes-per-day", "10", "--licences", "-3"], "--licences"),
        (["--changes-per-day", "10", "--licences", "1", "--edition", "essentials"], "--edition"),
        (["--changes-per-day", "10", "--licences", "1", "--peak-share", "1.5"], "--peak-share"),
        (["--changes-per-day", "10", "--licences", "1", "--peak-hours", "0"], "--peak-hours"),
        (["--changes-per-day", "10", "--licences", "1", "--max-share", "nan"], "--max-share"),
        (["--licences", "1"], "--changes-per-day"),
    ],
)
def test_cli_plan_refuses_bad_input_naming_the_option(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["plan", *argv], out=io.StringIO()) == 2
    error = capsys.readouterr().err
    assert error.startswith("nrtsync: error: ")
    assert option in error


def test_measured_constants_are_the_last_bench_runs() -> None:
    # The planner's constants come from `python -m bench.run --only cost` (bench/results.json, cost.planner).
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    measured = results["cost"]["planner"]
    assert planner.MEASURED.base_p50_s == measured["base_p50_s"]
    assert planner.MEASURED.base_p90_s == measured["base_p90_s"]
    assert planner.MEASURED.sync_fixed_s == measured["sync_fixed_s"]
    assert planner.MEASURED.sync_per_record_s == measured["sync_per_record_s"]
    assert planner.MEASURED.measured_at == results["cost"]["measured_at"]
