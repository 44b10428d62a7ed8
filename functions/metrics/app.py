"""EventBridge schedule (every minute) -> metrics: roll the sync history up and publish latency metrics."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.adapters.cloudwatch import CloudWatchPublisher
from nrtsync.adapters.history_reader import DynamoApiUsageSource, DynamoMetricsHistory
from nrtsync.metrics.service import MetricsService
from nrtsync.observability import logger, metrics, tracer
from nrtsync.settings import metrics_settings

_service: MetricsService | None = None


def service() -> MetricsService:
    """The service, built on first use so that a test can install its own before the first run."""
    global _service  # noqa: PLW0603 - one instance (and boto3 clients) per warm container is the point
    if _service is None:
        settings = metrics_settings()
        _service = MetricsService(
            settings,
            history=DynamoMetricsHistory(settings.history_table, read_concurrency=settings.history_read_concurrency),
            api_usage=DynamoApiUsageSource(settings.state_table),
            publisher=CloudWatchPublisher(),
        )
    return _service


def use_service(replacement: MetricsService | None) -> None:
    """Install a service with other collaborators (tests, the local stack); None rebuilds from settings."""
    global _service  # noqa: PLW0603
    _service = replacement


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    scheduled = parse(event=event, model=EventBridgeModel)
    logger.append_keys(schedule_id=scheduled.id, scheduled_time=scheduled.time.isoformat())
    result = service().run()
    metrics.add_metric(name="HistoryItemsSkipped", unit=MetricUnit.Count, value=result.history_items_skipped)
    metrics.add_metric(name="HourRollupsWritten", unit=MetricUnit.Count, value=result.hours_rolled)
    metrics.add_metric(name="HoursNotRolled", unit=MetricUnit.Count, value=result.hours_not_rolled)
    metrics.add_metric(name="MetricDataPublished", unit=MetricUnit.Count, value=result.metric_data_published)
    metrics.add_metric(
        name="DistributionMinutesPublished", unit=MetricUnit.Count, value=result.distribution_minutes_published
    )
    return result.as_dict()
