"""``nrtsync plan``: Salesforce API calls a day, latency and throughput for a traffic, and the settings to choose.

Offline arithmetic, no AWS and no Salesforce: a model of the SQS event source's batching whose constants come from
``make bench`` (``python -m bench.run --only cost``, section ``cost.planner`` of bench/results.json; a unit test
keeps ``MEASURED`` equal to it).

The model:

- **Allocation.** Salesforce's daily API request allocation, per rolling 24 h: Enterprise (and Professional
  with API access) 100,000 + 1,000 per Salesforce licence; Unlimited and Performance 100,000 + 5,000 per
  licence; Developer Edition 15,000 (Salesforce Developer Limits and Allocations Quick Reference, "API Request
  Limits and Allocations",
  https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm).
- **Calls.** The sync function makes one Composite call per batch of up to 200 records (whatever their mix of
  object types: docs/BENCHMARKS.md), so calls = changes / batch size.
- **Batch size.** The event source gathers a batch for up to ``BatchingWindowSeconds`` after its first
  message, or until 200 are in. Lambda runs several pollers on one queue (5 to start with; never more batches
  at once than ``SyncMaxConcurrency``), and each gathers its own batch, so at ``r`` changes/s a batch holds
  about ``1 + r * window / pollers``, at most 200. The local stack's poller (one poller) follows the same
  rule; its measured batches check it (docs/BENCHMARKS.md, "Salesforce API budget").
- **Latency.** A change waits in its batch until the window closes (or the batch fills) and then for the
  sync. Measured end-to-end latency at each window gives the part that does not depend on the window
  (``base_p50_s``/``base_p90_s``); the wait adds about half (P50) or nine tenths (P90) of the time a batch
  stays open, the whole of it for a batch of one.
- **Throughput.** At most ``SyncMaxConcurrency`` batches at a time, each taking ``sync_fixed_s +
  sync_per_record_s * size``; above that rate the queue grows and latency with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

MAX_BATCH = 200
IDLE_POLLERS = 5
SECONDS_PER_DAY = 86_400
# Salesforce's concurrent long-running request limit in production (requests over 20 s), same page.
SALESFORCE_LONG_REQUEST_LIMIT = 25

# edition -> (base, per licence): "API Request Limits and Allocations" (Salesforce Developer Limits Quick Reference)
ALLOCATIONS: dict[str, tuple[int, int]] = {
    "enterprise": (100_000, 1_000),
    "professional": (100_000, 1_000),
    "unlimited": (100_000, 5_000),
    "performance": (100_000, 5_000),
    "developer": (15_000, 0),
}

WINDOWS: tuple[int, ...] = (1, 2, 5, 10, 20, 30, 60, 120, 300)  # BatchingWindowSeconds: 1..300
CONCURRENCIES: tuple[int, ...] = (2, 3, 5, 10, 15, 20, 25)  # SyncMaxConcurrency: 2..1000; 25 is Salesforce's


@dataclass(frozen=True)
class Measured:
    """Constants measured on the local stack (bench/results.json ``cost.planner``)."""

    base_p50_s: float
    base_p90_s: float
    sync_fixed_s: float
    sync_per_record_s: float
    measured_at: str


# `python -m bench.run --only cost` of 2026-12-01 (bench/results.json, cost.planner): the Salesforce stand-in at
# 150 ms a call, DynamoDB on moto (slower than AWS: the sync's duration here is an upper bound).
MEASURED = Measured(
    base_p50_s=0.77,
    base_p90_s=0.93,
    sync_fixed_s=0.194,
    sync_per_record_s=0.0162,
    measured_at="2026-12-07T08:32:21+00:00",
)


def daily_allocation(edition: str, licences: int) -> int:
    """The org's API requests per 24 h."""
    base, per_licence = ALLOCATIONS[edition]
    return base + per_licence * licences


def event_source_pollers(concurrency: int, idle_pollers: int = IDLE_POLLERS) -> int:
    """Batches the event source gathers at once at low traffic: its initial pollers, capped by the concurrency."""
    return max(1, min(concurrency, idle_pollers))


def batch_size(rate_per_second: float, window_seconds: float, pollers: int) -> float:
    """Expected records per sync invocation at a steady rate (see the module's docstring)."""
    if rate_per_second <= 0:
        return 1.0
    return min(float(MAX_BATCH), 1.0 + rate_per_second * window_seconds / max(1, pollers))


def open_seconds(rate_per_second: float, window_seconds: float, pollers: int) -> float:
    """How long a batch stays open: the window, or less when 200 records arrive sooner."""
    if rate_per_second <= 0:
        return window_seconds
    return min(window_seconds, (MAX_BATCH - 1) * max(1, pollers) / rate_per_second)


def latency_seconds(
    rate_per_second: float, window_seconds: float, pollers: int, measured: Measured = MEASURED
) -> tuple[float, float]:
    """Expected end-to-end P50 and P90 (seconds) at a steady rate the sync keeps up with."""
    size = batch_size(rate_per_second, window_seconds, pollers)
    waiting = open_seconds(rate_per_second, window_seconds, pollers)
    alone = 1 / size  # the first change of a batch waits the whole time the batch is open
    p50 = measured.base_p50_s + waiting * (0.5 + 0.5 * alone)
    p90 = measured.base_p90_s + waiting * (0.9 + 0.1 * alone)
    return p50, p90


def throughput(concurrency: int, size: float, measured: Measured = MEASURED) -> float:
    """Changes per second the sync function keeps up with: concurrent batches of ``size``."""
    return concurrency * size / (measured.sync_fixed_s + measured.sync_per_record_s * size)


@dataclass(frozen=True)
class Traffic:
    """A day's changes; ``peak_share`` of them arrive evenly over ``peak_hours``, the rest over the other hours."""

    changes_per_day: int
    peak_share: float = 0.8
    peak_hours: float = 8.0

    def periods(self) -> list[tuple[float, float]]:
        """(changes, rate per second) of the peak and the rest of the day."""
        if self.peak_hours >= 24:
            return [(float(self.changes_per_day), self.changes_per_day / SECONDS_PER_DAY)]
        peak = self.changes_per_day * self.peak_share
        rest = self.changes_per_day - peak
        return [
            (peak, peak / (self.peak_hours * 3600)),
            (rest, rest / ((24 - self.peak_hours) * 3600)),
        ]

    @property
    def peak_rate(self) -> float:
        return max(rate for _, rate in self.periods())


@dataclass(frozen=True)
class Option:
    window_seconds: int
    concurrency: int
    calls_per_day: float
    share_of_allocation: float
    p50_s: float
    p90_s: float
    peak_batch_size: float
    keeps_up: bool

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def evaluate(
    traffic: Traffic, allocation: int, window_seconds: int, concurrency: int, measured: Measured = MEASURED
) -> Option:
    pollers = event_source_pollers(concurrency)
    calls = sum(changes / batch_size(rate, window_seconds, pollers) for changes, rate in traffic.periods() if changes)
    peak = traffic.peak_rate
    size = batch_size(peak, window_seconds, pollers)
    p50, p90 = latency_seconds(peak, window_seconds, pollers, measured)
    return Option(
        window_seconds=window_seconds,
        concurrency=concurrency,
        calls_per_day=calls,
        share_of_allocation=calls / allocation,
        p50_s=p50,
        p90_s=p90,
        peak_batch_size=size,
        keeps_up=throughput(concurrency, size, measured) >= peak,
    )


@dataclass(frozen=True)
class Plan:
    allocation: int
    traffic: Traffic
    concurrency: int
    options: list[Option]
    recommended: Option | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "allocation_per_day": self.allocation,
            "changes_per_day": self.traffic.changes_per_day,
            "peak_rate_per_second": round(self.traffic.peak_rate, 3),
            "recommended": None if self.recommended is None else self.recommended.as_dict(),
            "reason": self.reason,
            "options": [o.as_dict() for o in self.options],
        }


def plan(
    traffic: Traffic,
    *,
    edition: str,
    licences: int,
    max_share: float = 0.5,
    p50_slo_s: float = 120.0,
    p90_slo_s: float = 600.0,
    windows: Sequence[int] = WINDOWS,
    concurrencies: Sequence[int] = CONCURRENCIES,
    measured: Measured = MEASURED,
) -> Plan:
    """The smallest concurrency that keeps up with the peak with half again to spare (fewer concurrent batches
    mean bigger batches), then the shortest window whose calls stay within ``max_share`` of the allocation and
    whose latency stays within the SLOs."""
    allocation = daily_allocation(edition, licences)
    peak = traffic.peak_rate
    concurrency = next(
        (
            c
            for c in concurrencies
            if throughput(c, batch_size(peak, max(windows), event_source_pollers(c)), measured) >= 1.5 * peak
        ),
        max(concurrencies),
    )
    options = [evaluate(traffic, allocation, w, concurrency, measured) for w in windows]
    fitting = [
        o
        for o in options
        if o.keeps_up and o.share_of_allocation <= max_share and o.p50_s <= p50_slo_s and o.p90_s <= p90_slo_s
    ]
    if fitting:
        best = fitting[0]
        reason = (
            f"the shortest window whose calls stay within {max_share:.0%} of the allocation "
            f"and whose P50/P90 stay within {p50_slo_s:g} s / {p90_slo_s:g} s"
        )
        return Plan(allocation, traffic, concurrency, options, best, reason)
    if not any(o.keeps_up for o in options):
        reason = (
            f"{peak:.1f} changes/s at the peak is more than {max(concurrencies)} concurrent batches keep up with: "
            "the org's concurrent request limit (25) is the ceiling; spread the peak or raise the limit with Salesforce"
        )
    else:
        reason = (
            f"no window keeps the calls within {max_share:.0%} of {allocation:,} a day within the SLOs: "
            "add licences, raise --max-share, or move bulk loads (bill runs) to Bulk API 2.0"
        )
    return Plan(allocation, traffic, concurrency, options, None, reason)
