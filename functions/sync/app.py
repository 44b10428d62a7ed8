"""SQS -> sync: coalesce a batch of queued Zuora changes and upsert them into Salesforce.

The same function runs the circuit breaker's probe on its EventBridge schedule (once a minute): the probe shares
the warm container's Salesforce token and API usage reading, its settings and its permissions.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.app.shared import Lazy
from nrtsync.app.sync import build_sync, report_probe, report_session, sync_settings
from nrtsync.observability import logger, metrics
from nrtsync.services.breaker.service import is_probe_event
from nrtsync.services.sync.service import QueueMessage, SyncService

# Kept for warm invocations, and with it the Salesforce token.
service: Lazy[SyncService] = Lazy(lambda: build_sync(sync_settings()))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    remaining_seconds = context.get_remaining_time_in_millis() / 1000
    if is_probe_event(event):
        probe = service.get().probe(remaining_seconds=remaining_seconds)
        report_probe(probe)
        return probe.as_dict() if probe else {}
    messages = QueueMessage.batch_from_sqs(event)
    result = service.get().process(messages, remaining_seconds=remaining_seconds)
    report_session(result)
    return result.batch_item_failures()
