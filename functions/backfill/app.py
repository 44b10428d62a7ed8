"""Step Functions (the backfill state machine) -> backfill: advance one run until this invocation's deadline.

Input ``{"run_id": ...}``; output ``{"run_id", "status", "wait_seconds", "reason"}``, where ``status`` is what the
state machine's Choice state branches on (running, waiting, done, failed).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.app.backfill import backfill_settings, build_backfill, report_backfill_step
from nrtsync.app.invocation import deadline_of
from nrtsync.app.shared import Lazy
from nrtsync.observability import logger
from nrtsync.services.backfill.admin import BackfillNotFoundError, BackfillRequestError
from nrtsync.services.backfill.step import BackfillStep, StepRefused, StepResult, run_id_of

service: Lazy[BackfillStep] = Lazy(lambda: build_backfill(backfill_settings()))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result: StepResult | StepRefused
    try:
        run_id = run_id_of(event)
        logger.append_keys(backfill_run=run_id)
        result = service.get().run(run_id, deadline=deadline_of(context))
    except (BackfillRequestError, BackfillNotFoundError) as exc:
        result = StepRefused(str(event.get("run_id", "")), str(exc))
    report_backfill_step(result)
    return result.as_dict()
