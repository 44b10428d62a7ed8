"""EventBridge schedule (every minute) -> metrics: roll the sync history up and publish latency metrics."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.app.invocation import deadline_of
from nrtsync.app.metrics import build_metrics, metrics_settings, report_metrics_run
from nrtsync.app.shared import Lazy
from nrtsync.observability import logger, metrics
from nrtsync.services.metrics.service import MetricsService

service: Lazy[MetricsService] = Lazy(lambda: build_metrics(metrics_settings()))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    scheduled = parse(event=event, model=EventBridgeModel)
    logger.append_keys(schedule_id=scheduled.id, scheduled_time=scheduled.time.isoformat())
    result = service.get().run(deadline=deadline_of(context))
    report_metrics_run(result)
    return result.as_dict()
