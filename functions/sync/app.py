"""SQS -> sync: coalesce a batch of queued Zuora changes and upsert them into Salesforce."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser.models import SqsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.observability import logger, metrics, tracer
from nrtsync.settings import sync_settings
from nrtsync.sync import QueueMessage, SyncService, build_sync_service, report_session

_service: SyncService | None = None


def service() -> SyncService:
    """The sync service, built on first use and kept for warm invocations (its Salesforce token too)."""
    global _service  # noqa: PLW0603 - one instance per warm container is the point
    if _service is None:
        _service = build_sync_service(sync_settings())
    return _service


def use_service(replacement: SyncService | None) -> None:
    """Install a service with other collaborators (tests, the local stack); None rebuilds from settings."""
    global _service  # noqa: PLW0603
    _service = replacement


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = SqsModel.model_validate(event)
    messages = [
        QueueMessage(
            message_id=record.messageId,
            receipt_handle=record.receiptHandle,
            body=str(record.body),  # SqsModel's body is the raw string; the service validates it
            receive_count=int(record.attributes.ApproximateReceiveCount),
        )
        for record in batch.Records
    ]
    result = service().process(messages, remaining_seconds=context.get_remaining_time_in_millis() / 1000)
    report_session(result)
    return result.batch_item_failures()
