"""The metrics run: roll closed hours up, compute every window, publish to CloudWatch.

Windows end at the start of the run's minute (the minute in progress is left out). ``5m`` and ``1h`` are
exact: every latency value of their minute summaries. ``24h`` and ``7d`` start at the first whole hour inside
the window (so they cover between ``length - 59 min`` and ``length``) and merge the hourly rollups with the
minutes not rolled yet, through log-bucketed histograms (relative error <= ``DEFAULT_RELATIVE_ERROR``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nrtsync.domain.latency import DEFAULT_RELATIVE_ERROR
from nrtsync.observability import logger
from nrtsync.observability.names import (
    ALL_OBJECT_TYPES,
    API_USAGE_PERCENT,
    END_TO_END_LATENCY,
    END_TO_END_LATENCY_COUNT,
    END_TO_END_LATENCY_PERCENTILES,
    EXACT_WINDOWS,
    OBJECT_TYPE_DIMENSION,
    PERCENTILES,
    RECORDS_FAILED_IN_WINDOW,
    RECORDS_SYNCED_IN_WINDOW,
    RECORDS_WAITING_IN_WINDOW,
    SYNC_LATENCY,
    SYNC_LATENCY_COUNT,
    SYNC_LATENCY_PERCENTILES,
    WINDOW_DIMENSION,
    WINDOWS,
)
from nrtsync.ports.api_usage import ApiUsageReader
from nrtsync.ports.metrics import (
    HOUR,
    MINUTE,
    HourRollup,
    MetricPoint,
    MetricPublisher,
    MetricsHistory,
    MetricsPublishError,
    MinuteSummary,
    ceil_hour,
    floor_hour,
    floor_minute,
    minute_key,
    minutes_between,
)
from nrtsync.services.metrics.settings import MetricsSettings
from nrtsync.services.metrics.windows import WindowStats, exact_window, histogram_windows

MILLISECONDS = "Milliseconds"
COUNT = "Count"
PERCENT = "Percent"


# Time kept back from the invocation's deadline for what follows the rollups: the windows, the distributions and
# publishing them (a few PutMetricData calls, each bounded by the client's own timeouts).
_PUBLISH_MARGIN_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class MetricsRunResult:
    """What one run did; the handler logs it and turns it into its own health metrics."""

    minute: str
    minute_items_read: int
    history_items_skipped: int
    hours_rolled: int
    hours_not_rolled: int
    metric_data_published: int
    distribution_minutes_published: int
    object_types: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["object_types"] = list(self.object_types)
        return result


def window_points(label: str, stats: Mapping[str, WindowStats], timestamp: datetime) -> list[MetricPoint]:
    """The window metrics of one window, for every object type and ``All``. A percentile of no values is
    left out (no data point) rather than published as 0."""
    points: list[MetricPoint] = []
    for object_type in sorted(stats):
        window = stats[object_type]
        dimensions = ((WINDOW_DIMENSION, label), (OBJECT_TYPE_DIMENSION, object_type))

        def point(name: str, unit: str, value: float, dimensions: tuple[tuple[str, str], ...] = dimensions) -> None:
            points.append(MetricPoint(name=name, unit=unit, timestamp=timestamp, dimensions=dimensions, value=value))

        for distribution, names, count_name in (
            (window.sync, SYNC_LATENCY_PERCENTILES, SYNC_LATENCY_COUNT),
            (window.e2e, END_TO_END_LATENCY_PERCENTILES, END_TO_END_LATENCY_COUNT),
        ):
            for pct, value in distribution.percentiles(PERCENTILES).items():
                if value is not None:
                    point(names[pct], MILLISECONDS, value)
            point(count_name, COUNT, distribution.count)
        point(RECORDS_SYNCED_IN_WINDOW, COUNT, window.counts.written)
        point(RECORDS_FAILED_IN_WINDOW, COUNT, window.counts.failed)
        point(RECORDS_WAITING_IN_WINDOW, COUNT, window.counts.waiting)
    return points


def _all_only(stats: Mapping[str, Mapping[str, WindowStats]]) -> dict[str, dict[str, WindowStats]]:
    """Each window's ``All`` only: every object type's own window metrics is a custom metric billed per month."""
    return {label: {k: v for k, v in by_type.items() if k == ALL_OBJECT_TYPES} for label, by_type in stats.items()}


def distribution_points(minute: datetime, summaries: Iterable[MinuteSummary]) -> list[MetricPoint]:
    """One minute's raw latencies as Values/Counts, per object type and ``All``."""
    sync: dict[str, Counter[float]] = {}
    e2e: dict[str, Counter[float]] = {}
    for summary in summaries:
        for key in (summary.object_type, ALL_OBJECT_TYPES):
            sync.setdefault(key, Counter()).update(summary.sync_ms)
            e2e.setdefault(key, Counter()).update(summary.e2e_ms)
    points: list[MetricPoint] = []
    for name, by_type in ((SYNC_LATENCY, sync), (END_TO_END_LATENCY, e2e)):
        for object_type in sorted(by_type):
            counter = by_type[object_type]
            if not counter:
                continue
            values = tuple(sorted(counter))
            points.append(
                MetricPoint(
                    name=name,
                    unit=MILLISECONDS,
                    timestamp=minute,
                    dimensions=((OBJECT_TYPE_DIMENSION, object_type),),
                    values=values,
                    counts=tuple(float(counter[v]) for v in values),
                )
            )
    return points


def _hours(first: datetime, last: datetime) -> list[datetime]:
    hours: list[datetime] = []
    current = first
    while current <= last:
        hours.append(current)
        current += HOUR
    return hours


class MetricsService:
    """Computes and publishes the sync's latency and volume metrics from the sync history."""

    def __init__(
        self,
        settings: MetricsSettings,
        *,
        history: MetricsHistory,
        api_usage: ApiUsageReader,
        publisher: MetricPublisher,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        relative_error: float = DEFAULT_RELATIVE_ERROR,
    ) -> None:
        self._settings = settings
        self._history = history
        self._api_usage = api_usage
        self._publisher = publisher
        self._clock = clock or (lambda: datetime.now(UTC))
        self._monotonic = monotonic
        self._relative_error = relative_error

    def run(self, now: datetime | None = None, *, deadline: float | None = None) -> MetricsRunResult:
        """One scheduled run (idempotent: re-running recomputes the same windows and publishes no minute's
        raw distribution twice). ``deadline`` (a ``time.monotonic()`` value, the invocation's) bounds the hours
        rolled up: those left over wait for the next run, as the per-run maximum's do."""
        now = (now or self._clock()).astimezone(UTC)
        current = floor_minute(now)
        last_rollable = floor_hour(now - timedelta(minutes=self._settings.rollup_lag_minutes) - HOUR)

        rollups, rolled_count, not_rolled, skipped = self._roll_up(current, last_rollable, deadline)
        tail_start = last_rollable + HOUR
        recent_start = min(current - WINDOWS["1h"], tail_start)
        recent = self._history.minute_summaries(minutes_between(recent_start, current))
        skipped += recent.skipped

        stats: dict[str, dict[str, WindowStats]] = {
            label: exact_window(s for s in recent.summaries if s.minute >= current - WINDOWS[label])
            for label in EXACT_WINDOWS
        }
        stats |= histogram_windows(
            rollups,
            (s for s in recent.summaries if s.minute >= tail_start),
            {label: ceil_hour(current - length) for label, length in WINDOWS.items() if label not in EXACT_WINDOWS},
            self._relative_error,
        )
        publishable = stats if self._settings.window_metrics_by_object_type else _all_only(stats)
        points = [p for label in WINDOWS for p in window_points(label, publishable[label], current)]
        points += self._api_usage_points(now, current)
        data_published = self._publisher.publish(self._settings.metrics_namespace, points)

        dist_published, dist_minutes = self._publish_distributions(now, recent_start, recent.summaries)
        result = MetricsRunResult(
            minute=minute_key(current),
            minute_items_read=len(recent.summaries),
            history_items_skipped=skipped,
            hours_rolled=rolled_count,
            hours_not_rolled=not_rolled,
            metric_data_published=data_published + dist_published,
            distribution_minutes_published=dist_minutes,
            object_types=tuple(sorted(k for k in stats["7d"] if k != ALL_OBJECT_TYPES)),
        )
        logger.info("metrics published", extra=result.as_dict())
        return result

    def _roll_up(
        self, current: datetime, last_rollable: datetime, deadline: float | None
    ) -> tuple[list[HourRollup], int, int, int]:
        """Roll the closed hours of the 7-day window that have no rollup yet (newest first, a bounded number
        per run), and return every rollup of the window."""
        first_hour = ceil_hour(current - WINDOWS["7d"])
        rolled = self._history.rolled_hours(first_hour, last_rollable)
        rollups = list(rolled.rollups)
        skipped = rolled.skipped
        missing = [h for h in reversed(_hours(first_hour, last_rollable)) if h not in rolled.hours]
        to_roll = missing[: self._settings.rollup_max_hours_per_run]
        rolled_now = 0
        for hour in to_roll:
            if deadline is not None and self._monotonic() >= deadline - _PUBLISH_MARGIN_SECONDS:
                break
            rolled_now += 1
            read = self._history.minute_summaries(minutes_between(hour, hour + HOUR))
            built = HourRollup.from_minutes(hour, read.summaries, self._relative_error)
            expires_at = int((hour + HOUR + timedelta(days=self._settings.rollup_ttl_days)).timestamp())
            self._history.write_rollups(hour, built, skipped=read.skipped, expires_at=expires_at)
            rollups.extend(built.values())
            skipped += read.skipped
        not_rolled = len(missing) - rolled_now
        if not_rolled:
            logger.warning(
                "closed hours not rolled up yet: 24h/7d leave them out until a later run rolls them",
                extra={"hours_not_rolled": not_rolled, "oldest": missing[-1].isoformat()},
            )
        return rollups, rolled_now, not_rolled, skipped

    def _api_usage_points(self, now: datetime, timestamp: datetime) -> list[MetricPoint]:
        usage = self._api_usage.api_usage()
        if usage is None:
            return []
        age = now - usage.observed_at
        if age > timedelta(seconds=self._settings.api_usage_max_age_seconds):
            logger.info("API usage not published: last observation too old", extra={"age_s": age.total_seconds()})
            return []
        return [MetricPoint(name=API_USAGE_PERCENT, unit=PERCENT, timestamp=timestamp, value=usage.percent)]

    def _publish_distributions(
        self, now: datetime, loaded_from: datetime, summaries: Sequence[MinuteSummary]
    ) -> tuple[int, int]:
        """Publish the raw latencies of every settled minute after the watermark, each minute once.

        The watermark is claimed (conditional write) before publishing, so two overlapping runs never both
        publish a minute; if publishing fails the claim is given back and the next run retries.
        """
        last_settled = floor_minute(now - timedelta(seconds=self._settings.distribution_settle_seconds) - MINUTE)
        watermark = self._history.distribution_watermark()
        first = loaded_from if watermark is None else watermark + MINUTE
        if first < loaded_from:
            logger.warning(
                "raw latency distribution not published for minutes older than the last hour",
                extra={"from": minute_key(first), "to": minute_key(loaded_from - MINUTE)},
            )
            first = loaded_from
        if first > last_settled:
            return 0, 0
        if not self._history.advance_watermark(watermark, last_settled):
            logger.info("another run claimed these minutes' distributions", extra={"to": minute_key(last_settled)})
            return 0, 0
        by_minute: dict[datetime, list[MinuteSummary]] = {}
        for summary in summaries:
            if first <= summary.minute <= last_settled:
                by_minute.setdefault(summary.minute, []).append(summary)
        points = [p for minute in sorted(by_minute) for p in distribution_points(minute, by_minute[minute])]
        try:
            published = self._publisher.publish(self._settings.metrics_namespace, points)
        except MetricsPublishError:
            self._history.advance_watermark(last_settled, first - MINUTE)
            raise
        return published, len(minutes_between(first, last_settled + MINUTE))
