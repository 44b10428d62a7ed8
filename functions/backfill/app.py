"""Step Functions (the backfill state machine) -> backfill: advance one run until this invocation's deadline.

Input ``{"run_id": ...}``; output ``{"run_id", "status", "wait_seconds", "reason"}``, where ``status`` is what the
state machine's Choice state branches on (running, waiting, done, failed).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.app.backfill import backfill_settings, build_backfill, report_backfill_step
from nrtsync.app.shared import Lazy
from nrtsync.observability import logger
from nrtsync.services.backfill.step import (
    BackfillNotFoundError,
    BackfillRequestError,
    BackfillService,
    failed_payload,
    run_id_of,
)

service: Lazy[BackfillService] = Lazy(lambda: build_backfill(backfill_settings()))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        run_id = run_id_of(event)
    except BackfillRequestError as exc:
        payload = failed_payload(str(event.get("run_id", "")), str(exc))
        report_backfill_step(payload, None)
        return payload
    logger.append_keys(backfill_run=run_id)
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000
    try:
        result = service.get().step(run_id, deadline=deadline)
    except BackfillNotFoundError as exc:
        payload = failed_payload(run_id, str(exc))
        report_backfill_step(payload, None)
        return payload
    payload = result.as_payload()
    report_backfill_step(payload, result.run)
    return payload
