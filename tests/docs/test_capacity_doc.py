"""docs/CAPACITY.md's thresholds are the planner's model with the measured constants and the template's defaults
(issue 13, item 4): a re-measured constant or a changed default that moves a threshold makes this fail."""

from __future__ import annotations

from pathlib import Path

from nrtsync_cli import plan as planner
from nrtsync_local.template import load_template, parameter_defaults

ROOT = Path(__file__).resolve().parents[2]
CAPACITY = (ROOT / "docs" / "CAPACITY.md").read_text(encoding="utf-8")
DEFAULTS = parameter_defaults(load_template())
WINDOW = float(DEFAULTS["BatchingWindowSeconds"])
POLLERS = planner.event_source_pollers(int(DEFAULTS["SyncMaxConcurrency"]))


def calls_per_day(rate: float) -> float:
    return 86_400 * rate / planner.batch_size(rate, WINDOW, POLLERS)


def rate_reaching(calls: float) -> float:
    low, high = 0.0001, 10_000.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if calls_per_day(middle) < calls else (low, middle)
    return low


def test_the_allocation_thresholds_follow_the_batch_model() -> None:
    half_of_ten_licences = planner.daily_allocation("enterprise", 10) / 2
    assert f"**{rate_reaching(half_of_ten_licences):.2f} changes/s**" in CAPACITY
    assert f"at {rate_reaching(planner.daily_allocation('enterprise', 100) / 2):.1f}/s" in CAPACITY
    assert f"all of it at {rate_reaching(planner.daily_allocation('enterprise', 100)):.0f}/s" in CAPACITY
    # Every poller sends one batch per window, however busy: the calls level off.
    assert f"{86_400 * POLLERS / WINDOW:,.0f} a day" in CAPACITY


def test_the_sync_throughput_and_its_ceiling_follow_the_measured_duration() -> None:
    full_batch = planner.MEASURED.sync_fixed_s + planner.MAX_BATCH * planner.MEASURED.sync_per_record_s
    assert f"= {full_batch:.1f} s" in CAPACITY
    at_default = planner.throughput(int(DEFAULTS["SyncMaxConcurrency"]), planner.MAX_BATCH)
    assert f"≈ **{round(at_default, -2):.0f} changes/s**" in CAPACITY
    ceiling = planner.throughput(planner.SALESFORCE_LONG_REQUEST_LIMIT, planner.MAX_BATCH)
    assert f"≈ {round(ceiling, -2):,.0f} changes/s" in CAPACITY


def test_the_stage_throttle_is_the_templates() -> None:
    assert f"`ApiThrottleRateLimit` {DEFAULTS['ApiThrottleRateLimit']} requests/s" in CAPACITY
    assert f"**{DEFAULTS['ApiThrottleRateLimit']} changes/s**" in CAPACITY
