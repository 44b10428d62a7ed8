"""EventBridge schedule (ReconcileSchedule, every 15 minutes by default) -> reconcile: queue the Zuora changes
Salesforce lacks, i.e. those whose callouts were lost (docs/ZUORA.md, "Reconciliation")."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.app.invocation import deadline_of
from nrtsync.app.reconcile import build_reconcile, reconcile_settings, report_reconcile
from nrtsync.app.shared import Lazy
from nrtsync.observability import logger, metrics
from nrtsync.services.reconcile.service import Reconciler

# Kept for warm invocations, and with it the Zuora token.
service: Lazy[Reconciler] = Lazy(lambda: build_reconcile(reconcile_settings()))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    scheduled = parse(event=event, model=EventBridgeModel)
    logger.append_keys(schedule_id=scheduled.id, scheduled_time=scheduled.time.isoformat())
    reconciler = service.get()
    # The daily deletes sweep, or one asked for by `nrtsync reconcile --deletes` (detail.deletes).
    asked = isinstance(scheduled.detail, dict) and scheduled.detail.get("deletes") is True
    deletes = reconciler.includes_deletes(scheduled.time) or asked
    result = reconciler.run(deadline=deadline_of(context), deletes=deletes)
    report_reconcile(result)
    result.raise_for_errors()
    return result.as_dict()
