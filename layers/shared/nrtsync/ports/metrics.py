"""The metrics function's contracts: what it reads from the sync history (as plain values, no DynamoDB types
here) and what it publishes to; the API usage it reads is ``ports.api_usage``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from nrtsync.domain.latency import DEFAULT_RELATIVE_ERROR, LatencyHistogram

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


# The UTC minute as the history table spells it (and as log lines name a minute).
MINUTE_FORMAT = "%Y-%m-%dT%H:%M"


def minute_key(minute: datetime) -> str:
    """The UTC minute as the history table spells it: ``YYYY-MM-DDTHH:MM``."""
    return minute.astimezone(UTC).strftime(MINUTE_FORMAT)


def floor_minute(moment: datetime) -> datetime:
    """The start of the UTC minute holding ``moment``."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    """The first whole-hour instant at or after ``moment``."""
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def minutes_between(start: datetime, end: datetime) -> list[datetime]:
    """Every minute start in ``[start, end)``."""
    minutes: list[datetime] = []
    current = floor_minute(start)
    while current < end:
        minutes.append(current)
        current += MINUTE
    return minutes


@dataclass(frozen=True, slots=True)
class RecordCounts:
    """Record outcomes; adding two is exact, so windows of any length sum them."""

    written: int = 0
    failed: int = 0
    waiting: int = 0
    superseded: int = 0
    stale: int = 0

    def __add__(self, other: RecordCounts) -> RecordCounts:
        return RecordCounts(
            written=self.written + other.written,
            failed=self.failed + other.failed,
            waiting=self.waiting + other.waiting,
            superseded=self.superseded + other.superseded,
            stale=self.stale + other.stale,
        )


@dataclass(frozen=True, slots=True)
class MinuteSummary:
    """One sync session's outcomes for one object type in one minute (pk ``MINUTE#...``)."""

    minute: datetime
    object_type: str
    session_id: str
    counts: RecordCounts
    sync_ms: tuple[float, ...]
    e2e_ms: tuple[float, ...]


@dataclass(slots=True)
class HourRollup:
    """One object type's closed hour: summed counts and mergeable latency histograms."""

    hour: datetime
    object_type: str
    counts: RecordCounts = field(default_factory=RecordCounts)
    minute_items: int = 0
    sync: LatencyHistogram = field(default_factory=LatencyHistogram)
    e2e: LatencyHistogram = field(default_factory=LatencyHistogram)

    @classmethod
    def from_minutes(
        cls,
        hour: datetime,
        minutes: Iterable[MinuteSummary],
        relative_error: float = DEFAULT_RELATIVE_ERROR,
    ) -> dict[str, HourRollup]:
        """The rollups (one per object type) of an hour's minute summaries; deterministic, so re-rolling
        an hour rewrites the same items."""
        rollups: dict[str, HourRollup] = {}
        end = hour + HOUR
        for summary in minutes:
            if not hour <= summary.minute < end:
                continue
            rollup = rollups.get(summary.object_type)
            if rollup is None:
                rollup = cls(
                    hour=hour,
                    object_type=summary.object_type,
                    sync=LatencyHistogram(relative_error),
                    e2e=LatencyHistogram(relative_error),
                )
                rollups[summary.object_type] = rollup
            rollup.counts = rollup.counts + summary.counts
            rollup.minute_items += 1
            rollup.sync.extend(summary.sync_ms)
            rollup.e2e.extend(summary.e2e_ms)
        return rollups


@dataclass(frozen=True, slots=True)
class RolledHours:
    """The rollups found for a range of hours; only hours whose completion marker exists are listed."""

    hours: frozenset[datetime]
    rollups: tuple[HourRollup, ...]
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class MinuteRead:
    """The minute summaries of some minutes, and how many items were malformed and skipped."""

    summaries: tuple[MinuteSummary, ...]
    skipped: int = 0


class HistoryReadError(RuntimeError):
    """The history or state table could not be read or written (retryable: the next run starts over)."""


class MalformedItemError(ValueError):
    """A history item does not have the shape the contract promises."""


class MetricsHistory(Protocol):
    def minute_summaries(self, minutes: Sequence[datetime]) -> MinuteRead: ...

    def rolled_hours(self, first: datetime, last: datetime) -> RolledHours: ...

    def write_rollups(
        self, hour: datetime, rollups: Mapping[str, HourRollup], *, skipped: int, expires_at: int
    ) -> None: ...

    def distribution_watermark(self) -> datetime | None: ...

    def advance_watermark(self, expected: datetime | None, new: datetime) -> bool: ...


class MetricsPublishError(RuntimeError):
    """CloudWatch did not take (some of) the metric data (retryable: the next run publishes again)."""


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One metric datum: a single ``value``, or a distribution as ``values`` with their ``counts``."""

    name: str
    unit: str
    timestamp: datetime
    dimensions: tuple[tuple[str, str], ...] = ()
    value: float | None = None
    values: tuple[float, ...] = ()
    counts: tuple[float, ...] = ()

    def dimension(self, name: str) -> str | None:
        return next((v for n, v in self.dimensions if n == name), None)


class MetricPublisher(Protocol):
    def publish(self, namespace: str, points: Sequence[MetricPoint]) -> int: ...
