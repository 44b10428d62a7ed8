"""The metrics function (schedule -> CloudWatch): its settings, assembly and reporting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit

from nrtsync.observability import metrics
from nrtsync.observability.names import (
    DISTRIBUTION_MINUTES_PUBLISHED,
    HISTORY_ITEMS_SKIPPED,
    HOUR_ROLLUPS_WRITTEN,
    HOURS_NOT_ROLLED,
    METRIC_DATA_PUBLISHED,
)
from nrtsync.services.metrics.settings import MetricsSettings

if TYPE_CHECKING:
    from nrtsync.ports.api_usage import ApiUsageReader
    from nrtsync.ports.metrics import MetricPublisher, MetricsHistory
    from nrtsync.services.metrics.service import MetricsRunResult, MetricsService


metrics_settings = cache(MetricsSettings.from_env)


def build_metrics(
    settings: MetricsSettings,
    *,
    history: MetricsHistory | None = None,
    api_usage: ApiUsageReader | None = None,
    publisher: MetricPublisher | None = None,
    clock: Callable[[], datetime] | None = None,
) -> MetricsService:
    """The metrics service: the history and the API usage from DynamoDB, published to CloudWatch."""
    from nrtsync.adapters.aws.api_usage import DynamoApiUsageStore  # noqa: PLC0415
    from nrtsync.adapters.aws.cloudwatch import CloudWatchPublisher  # noqa: PLC0415
    from nrtsync.adapters.aws.history_reader import DynamoMetricsHistory  # noqa: PLC0415
    from nrtsync.services.metrics.service import MetricsService  # noqa: PLC0415

    return MetricsService(
        settings,
        history=history
        or DynamoMetricsHistory(settings.history_table, read_concurrency=settings.history_read_concurrency),
        api_usage=api_usage or DynamoApiUsageStore(settings.state_table),
        publisher=publisher or CloudWatchPublisher(),
        clock=clock,
    )


def report_metrics_run(result: MetricsRunResult) -> None:
    """The metrics function's own health, one EMF data point per run."""
    for name, value in (
        (HISTORY_ITEMS_SKIPPED, result.history_items_skipped),
        (HOUR_ROLLUPS_WRITTEN, result.hours_rolled),
        (HOURS_NOT_ROLLED, result.hours_not_rolled),
        (METRIC_DATA_PUBLISHED, result.metric_data_published),
        (DISTRIBUTION_MINUTES_PUBLISHED, result.distribution_minutes_published),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
