"""bench.cost_model: the price table and the arithmetic from measured usage to dollars (issue 13, item 1)."""

from __future__ import annotations

import json

import pytest

from bench.cost_model import (
    PRICES_FILE,
    PROFILES,
    QUANTITIES,
    Prices,
    Profile,
    UnitUsage,
    idle_receives_per_month,
    monthly_cost,
    price,
    xray_traces,
)


@pytest.fixture
def prices() -> Prices:
    return Prices.load()


def _usage(**overrides: object) -> UnitUsage:
    data: dict[str, object] = {
        "per_change": {},
        "per_sync_invocation": {},
        "per_sync_record": {},
        "per_scheduled_run": {},
        "scheduled_runs_per_hour": {},
        "fixed_per_month": {},
    }
    data |= overrides
    return UnitUsage.from_dict(data)


def test_every_price_is_dated_sourced_and_says_how_it_was_checked() -> None:
    table = json.loads(PRICES_FILE.read_text())
    assert table["region"] == "us-east-1"
    assert table["as_of"]
    for name, entry in table["prices"].items():
        assert entry["usd"] > 0, name
        assert entry["source"].startswith("https://aws.amazon.com/"), name
        assert entry["checked"], name
    # Every quantity the model prices has a price.
    assert {key for _, key, _ in QUANTITIES.values()} <= set(table["prices"])


def test_a_million_of_each_request_costs_its_list_price(prices: Prices) -> None:
    million = 1_000_000
    assert price({"apigateway_requests": million}, prices) == {"API Gateway": pytest.approx(3.5)}
    assert price({"sqs_requests": million}, prices) == {"SQS": pytest.approx(0.4)}
    assert price({"dynamodb_wru": million, "dynamodb_rru": million}, prices) == {"DynamoDB": pytest.approx(0.75)}
    assert price({"log_bytes": 2**30}, prices) == {"CloudWatch Logs": pytest.approx(0.5)}
    assert price({"lambda_gb_seconds": 1_000}, prices)["Lambda"] == pytest.approx(0.0133334)


def test_an_unpriced_quantity_is_an_error_not_free(prices: Prices) -> None:
    with pytest.raises(KeyError, match="no price"):
        price({"carrier_pigeons": 1}, prices)


def test_per_change_costs_scale_with_changes_and_fixed_ones_do_not(prices: Prices) -> None:
    usage = _usage(per_change={"apigateway_requests": 1.0}, fixed_per_month={"dashboards": 1.0})
    small = monthly_cost(Profile("a", "a", 1_000_000, 1.0), usage, prices, window_seconds=2, concurrency=5)
    large = monthly_cost(Profile("b", "b", 2_000_000, 1.0), usage, prices, window_seconds=2, concurrency=5)
    assert large.by_service["API Gateway"] == pytest.approx(2 * small.by_service["API Gateway"])
    assert small.by_service["CloudWatch alarms and dashboard"] == pytest.approx(3.0)
    assert large.by_service["CloudWatch alarms and dashboard"] == pytest.approx(3.0)


def test_per_invocation_costs_follow_the_batch_size(prices: Prices) -> None:
    # 10 changes/s, window 2 s, concurrency 5 (5 pollers): batches of 1 + 10*2/5 = 5.
    usage = _usage(per_sync_invocation={"lambda_requests": 1.0})
    profile = Profile("p", "p", 1_000_000, 10.0)
    cost = monthly_cost(profile, usage, prices, window_seconds=2, concurrency=5)
    assert cost.batch_size == pytest.approx(5.0)
    assert cost.sync_invocations == pytest.approx(200_000)
    assert cost.quantities["lambda_requests"] == pytest.approx(200_000)


def test_scheduled_runs_and_idle_polls_are_fixed(prices: Prices) -> None:
    usage = _usage(
        per_scheduled_run={"MetricsFunction": {"lambda_requests": 1.0}},
        scheduled_runs_per_hour={"MetricsFunction": 60.0},
    )
    cost = monthly_cost(PROFILES[0], usage, prices, window_seconds=2, concurrency=5)
    assert cost.quantities["lambda_requests"] == pytest.approx(60 * 730)
    # 5 pollers, a 20-s long poll each: 15 empty receives a minute, all month.
    assert idle_receives_per_month(prices, 5) == pytest.approx(15 * 60 * 730)
    assert idle_receives_per_month(prices, 2) == pytest.approx(6 * 60 * 730)


def test_xray_records_the_first_request_each_second_and_five_percent_of_the_rest(prices: Prices) -> None:
    assert xray_traces(1_000, 0.1, prices) == pytest.approx(1_000)
    # 100/s for 10 s: 10 in the reservoir, 5% of the other 990.
    assert xray_traces(1_000, 100, prices) == pytest.approx(10 + 0.05 * 990)


def test_profiles_are_the_issues_three() -> None:
    trickle, business, bill_run = PROFILES
    assert trickle.rate_per_second == pytest.approx(0.1)
    assert business.rate_per_second * 8 * 3600 == pytest.approx(50_000)
    assert bill_run.changes_per_month == 100_000
    assert bill_run.rate_per_second * 600 == pytest.approx(100_000)
