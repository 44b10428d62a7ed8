"""SQS -> sync: coalesce a batch of queued Zuora changes and upsert them into Salesforce.

The same function runs the circuit breaker's probe on its EventBridge schedule (once a minute): the probe shares
the warm container's Salesforce token and API usage reading, its settings and its permissions.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.app.invocation import deadline_of
from nrtsync.app.shared import Lazy
from nrtsync.app.sync import build_sync, report_probe, report_session, sync_settings
from nrtsync.observability import logger, metrics
from nrtsync.services.breaker.service import is_probe_event
from nrtsync.services.sync.messages import QueueMessage
from nrtsync.services.sync.service import SyncService

# Kept for warm invocations, and with it the Salesforce token.
service: Lazy[SyncService] = Lazy(lambda: build_sync(sync_settings()))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = deadline_of(context)
    if is_probe_event(event):
        probe = service.get().probe(deadline=deadline)
        report_probe(probe)
        return probe.as_dict() if probe else {}
    result = service.get().run(QueueMessage.batch_from_sqs(event), deadline=deadline)
    report_session(result)
    return result.as_dict()
