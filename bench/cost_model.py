"""Dollars from measured usage: the price table (bench/prices.json), the traffic profiles, and the arithmetic.

Pure functions, no I/O besides reading the price table. ``bench.cost_bench`` measures what one change, one sync
invocation and one scheduled run cost in requests, units and bytes on the local stack; this module scales that
to a month at a profile's rate, with the sync function's batches sized by ``batch_size`` (the same model the
planner, ``nrtsync_cli.plan``, uses).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrtsync_cli.plan import batch_size, event_source_pollers

PRICES_FILE = Path(__file__).resolve().parent / "prices.json"
GIB = 2**30
SECONDS_PER_HOUR = 3600

# quantity -> (service as the bill shows it, price key, price units per quantity)
QUANTITIES: dict[str, tuple[str, str, float]] = {
    "apigateway_requests": ("API Gateway", "apigateway_rest_request", 1.0),
    "lambda_requests": ("Lambda", "lambda_request", 1.0),
    "lambda_gb_seconds": ("Lambda", "lambda_arm64_gb_second", 1.0),
    "sqs_requests": ("SQS", "sqs_standard_request", 1.0),
    "dynamodb_wru": ("DynamoDB", "dynamodb_wru", 1.0),
    "dynamodb_rru": ("DynamoDB", "dynamodb_rru", 1.0),
    "put_metric_data_requests": ("CloudWatch metrics", "cloudwatch_put_metric_data_request", 1.0),
    "log_bytes": ("CloudWatch Logs", "cloudwatch_logs_ingested_gb", 1 / GIB),
    "secrets_calls": ("Secrets Manager", "secretsmanager_api_call", 1.0),
    "xray_traces": ("X-Ray", "xray_trace_recorded", 1.0),
    # fixed, per month
    "custom_metrics": ("CloudWatch metrics", "cloudwatch_custom_metric_month", 1.0),
    "alarm_metrics": ("CloudWatch alarms and dashboard", "cloudwatch_alarm_metric_month", 1.0),
    "dashboards": ("CloudWatch alarms and dashboard", "cloudwatch_dashboard_month", 1.0),
    "secrets": ("Secrets Manager", "secretsmanager_secret_month", 1.0),
}


@dataclass(frozen=True)
class Prices:
    usd: Mapping[str, float]
    assumptions: Mapping[str, float]
    as_of: str
    region: str

    @classmethod
    def load(cls, path: Path = PRICES_FILE) -> Prices:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            usd={name: float(p["usd"]) for name, p in data["prices"].items()},
            assumptions={
                name: float(a["value"] if isinstance(a, dict) else a) for name, a in data["assumptions"].items()
            },
            as_of=str(data["as_of"]),
            region=str(data["region"]),
        )

    @property
    def hours_per_month(self) -> float:
        return self.assumptions["hours_per_month"]


@dataclass(frozen=True)
class Profile:
    """A traffic profile: changes a month, arriving at ``rate_per_second`` while they arrive."""

    name: str
    label: str
    changes_per_month: float
    rate_per_second: float


PROFILES: tuple[Profile, ...] = (
    Profile("trickle", "steady trickle: 1 change every 10 s, all month", 0.1 * 730 * SECONDS_PER_HOUR, 0.1),
    Profile(
        "business_day",
        "business day: 50,000 changes over 8 h, 22 days a month",
        50_000 * 22,
        50_000 / (8 * SECONDS_PER_HOUR),
    ),
    Profile("bill_run", "bill run: 100,000 invoices in 10 minutes, once a month", 100_000, 100_000 / 600),
)


@dataclass(frozen=True)
class UnitUsage:
    """Measured usage: per change (whatever the batching), per sync invocation and per record in it, per run of
    each scheduled function, and the fixed monthly items. Keys are ``QUANTITIES`` names."""

    per_change: Mapping[str, float]
    per_sync_invocation: Mapping[str, float]
    per_sync_record: Mapping[str, float]
    per_scheduled_run: Mapping[str, Mapping[str, float]]  # function -> quantities of one run
    scheduled_runs_per_hour: Mapping[str, float]
    fixed_per_month: Mapping[str, float]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitUsage:
        return cls(
            per_change=dict(data["per_change"]),
            per_sync_invocation=dict(data["per_sync_invocation"]),
            per_sync_record=dict(data["per_sync_record"]),
            per_scheduled_run={k: dict(v) for k, v in data["per_scheduled_run"].items()},
            scheduled_runs_per_hour=dict(data["scheduled_runs_per_hour"]),
            fixed_per_month=dict(data["fixed_per_month"]),
        )


@dataclass
class MonthlyCost:
    profile: str
    changes: float
    batch_size: float
    sync_invocations: float
    quantities: dict[str, float] = field(default_factory=dict)
    by_service: dict[str, float] = field(default_factory=dict)
    fixed_by_service: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.by_service.values())

    @property
    def per_million_changes(self) -> float:
        return self.total / self.changes * 1_000_000 if self.changes else 0.0

    @property
    def variable_per_million_changes(self) -> float:
        variable = self.total - sum(self.fixed_by_service.values())
        return variable / self.changes * 1_000_000 if self.changes else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "changes_per_month": round(self.changes),
            "modelled_batch_size": round(self.batch_size, 2),
            "sync_invocations_per_month": round(self.sync_invocations),
            "usd_per_month": round(self.total, 2),
            "usd_per_million_changes": round(self.per_million_changes, 2),
            "usd_per_million_changes_variable_only": round(self.variable_per_million_changes, 2),
            "usd_per_month_by_service": {k: round(v, 4) for k, v in sorted(self.by_service.items())},
            "usd_per_month_fixed_by_service": {k: round(v, 4) for k, v in sorted(self.fixed_by_service.items())},
            "quantities_per_month": {k: round(v, 1) for k, v in sorted(self.quantities.items())},
        }


def _add(target: dict[str, float], quantities: Mapping[str, float], times: float) -> None:
    for name, amount in quantities.items():
        target[name] = target.get(name, 0.0) + amount * times


def price(quantities: Mapping[str, float], prices: Prices) -> dict[str, float]:
    """Dollars per service for these quantities (a quantity the table does not price is an error, not $0)."""
    by_service: dict[str, float] = {}
    for name, amount in quantities.items():
        if name not in QUANTITIES:
            raise KeyError(f"no price for quantity {name!r}")
        service, key, per = QUANTITIES[name]
        by_service[service] = by_service.get(service, 0.0) + amount * per * prices.usd[key]
    return by_service


def xray_traces(changes: float, rate_per_second: float, prices: Prices) -> float:
    """Traces recorded under X-Ray's default rule: the first request each second, then 5% of the rest."""
    if changes <= 0 or rate_per_second <= 0:
        return 0.0
    seconds = changes / rate_per_second
    reservoir = min(changes, seconds * min(1.0, rate_per_second))
    return reservoir + (changes - reservoir) * prices.assumptions["xray_sampled_share"]


def idle_receives_per_month(prices: Prices, concurrency: int) -> float:
    """Empty receives the event source's pollers make all month long (each long-polls 20 s at a time)."""
    per_minute = 60 / prices.assumptions["esm_long_poll_seconds"]
    pollers = event_source_pollers(concurrency, idle_pollers=int(prices.assumptions["esm_pollers_idle"]))
    return pollers * per_minute * 60 * prices.hours_per_month


def monthly_cost(
    profile: Profile, usage: UnitUsage, prices: Prices, *, window_seconds: float, concurrency: int
) -> MonthlyCost:
    """The month's bill at this profile, by service; fixed items (and scheduled runs) counted once."""
    pollers = event_source_pollers(concurrency, idle_pollers=int(prices.assumptions["esm_pollers_idle"]))
    batch = batch_size(profile.rate_per_second, window_seconds, pollers)
    changes = profile.changes_per_month
    invocations = changes / batch
    variable: dict[str, float] = {}
    _add(variable, usage.per_change, changes)
    _add(variable, usage.per_sync_record, changes)
    _add(variable, usage.per_sync_invocation, invocations)
    variable["xray_traces"] = variable.get("xray_traces", 0.0) + xray_traces(changes, profile.rate_per_second, prices)

    fixed: dict[str, float] = dict(usage.fixed_per_month)
    for function, run in usage.per_scheduled_run.items():
        runs = usage.scheduled_runs_per_hour.get(function, 0.0) * prices.hours_per_month
        _add(fixed, run, runs)
        fixed["xray_traces"] = fixed.get("xray_traces", 0.0) + runs  # one a run: within the 1/s reservoir
    fixed["sqs_requests"] = fixed.get("sqs_requests", 0.0) + idle_receives_per_month(prices, concurrency)

    result = MonthlyCost(profile.name, changes, batch, invocations)
    _add(result.quantities, variable, 1)
    _add(result.quantities, fixed, 1)
    result.fixed_by_service = price(fixed, prices)
    variable_by_service = price(variable, prices)
    for service in {*variable_by_service, *result.fixed_by_service}:
        result.by_service[service] = variable_by_service.get(service, 0.0) + result.fixed_by_service.get(service, 0.0)
    return result


def costs_at_profiles(
    usage: UnitUsage, prices: Prices, *, window_seconds: float, concurrency: int
) -> list[MonthlyCost]:
    return [monthly_cost(p, usage, prices, window_seconds=window_seconds, concurrency=concurrency) for p in PROFILES]
