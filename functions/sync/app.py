"""SQS -> sync: coalesce a batch of queued Zuora changes and upsert them into Salesforce."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.observability import logger, metrics
from nrtsync.reporting import report_session
from nrtsync.settings import sync_settings
from nrtsync.sync import QueueMessage, SyncService
from nrtsync.wiring import Lazy, build_sync

# Kept for warm invocations, and with it the Salesforce token.
service: Lazy[SyncService] = Lazy(lambda: build_sync(sync_settings()))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    messages = QueueMessage.batch_from_sqs(event)
    result = service.get().process(messages, remaining_seconds=context.get_remaining_time_in_millis() / 1000)
    report_session(result)
    return result.batch_item_failures()
