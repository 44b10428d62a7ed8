"""How every function reports what it did: log lines and EMF metrics, side by side, names from the registry.

Each handler parses its event, calls its service and hands the result to one ``report_*`` function here, so
what an operator sees (logs, metrics, the dashboard) is decided in one place for all four functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from nrtsync.metrics.names import (
    BATCH_SIZE,
    CALLOUTS_ACCEPTED,
    CALLOUTS_REJECTED,
    DISTRIBUTION_MINUTES_PUBLISHED,
    HISTORY_ITEMS_SKIPPED,
    HOUR_ROLLUPS_WRITTEN,
    HOURS_NOT_ROLLED,
    METRIC_DATA_PUBLISHED,
    REASON_DIMENSION,
    RECONCILE_MALFORMED_RECORDS,
    RECONCILE_RECORDS_READ,
    RECONCILE_WATERMARK_LAG,
    RECORDS_DUPLICATE,
    RECORDS_FAILED,
    RECORDS_STALE,
    RECORDS_SUPERSEDED,
    RECORDS_WAITING,
    RECORDS_WRITTEN,
    RECOVERED_BY_RECONCILIATION,
    SALESFORCE_API_CALLS,
    SYNC_PAUSED,
)
from nrtsync.observability import logger, metrics

if TYPE_CHECKING:
    from nrtsync.breaker import ProbeResult
    from nrtsync.ingest import IngestOutcome
    from nrtsync.metrics.service import MetricsRunResult
    from nrtsync.ports.backfill import BackfillRun
    from nrtsync.reconcile import ReconcileResult
    from nrtsync.sync import SyncResult

# The session log line's key for each per-session count (the dashboard's Logs Insights queries read the keys).
_SESSION_COUNTS: tuple[tuple[str, str], ...] = (
    (RECORDS_WRITTEN, "written"),
    (RECORDS_SUPERSEDED, "superseded"),
    (RECORDS_DUPLICATE, "duplicates"),
    (RECORDS_STALE, "stale_skipped"),
    (RECORDS_WAITING, "waiting"),
    (RECORDS_FAILED, "failed"),
    (SALESFORCE_API_CALLS, "api_calls"),
)


def report_authorization(*, allowed: bool) -> None:
    """The authorizer's verdict (never the credentials: the event carries the Authorization header)."""
    if allowed:
        logger.info("callout authorized")
    else:
        logger.warning("callout refused: no valid Basic credentials")


def report_callout(outcome: IngestOutcome) -> None:
    """One log line per callout and its EMF count; a rejection also counts per reason for the dashboard."""
    change = outcome.change
    context: dict[str, object] = {"reason": outcome.reason, "status": outcome.status_code}
    if change is not None:
        context |= {
            "object_type": change.object_type,
            "record_id": change.record_id,
            "notification_id": change.notification_id,
        }
    if outcome.accepted:
        metrics.add_metric(name=CALLOUTS_ACCEPTED, unit=MetricUnit.Count, value=1)
        logger.info("callout queued", extra=context)
        return
    # The total for an alarm, and a separate series per reason for the dashboard.
    metrics.add_metric(name=CALLOUTS_REJECTED, unit=MetricUnit.Count, value=1)
    with single_metric(
        name=CALLOUTS_REJECTED, unit=MetricUnit.Count, value=1, default_dimensions=metrics.default_dimensions
    ) as metric:
        metric.add_dimension(name=REASON_DIMENSION, value=outcome.reason)
    if outcome.status_code >= 500:
        logger.error("callout not stored; Zuora will retry", extra=context)
    else:
        logger.warning("callout rejected", extra=context | {"errors": outcome.body.get("errors", [])})


def report_session(result: SyncResult) -> None:
    """One structured log line per session (the Sync History view queries it) and its EMF counts.

    The session's API usage reading is in the log line only: the metrics function publishes the org's
    ``ApiUsagePercent`` from the same reading (the state table's), under that one name.
    """
    session = result.session
    line = session.as_log()
    logger.info("sync session", extra=line)
    for name, key in _SESSION_COUNTS:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=line[key])
    metrics.add_metric(name=BATCH_SIZE, unit=MetricUnit.Count, value=session.records_in)
    for failure in result.failures:
        # Salesforce's and pydantic's messages quote field values (personal data): they stay in the failure
        # list (`nrtsync failures`); the log line carries ids and the error code only.
        logger.warning(
            "sync failure",
            extra={
                "object_type": failure.object_type,
                "record_id": failure.record_id,
                "error_code": failure.error_code,
                "session_id": failure.session_id,
            },
        )


def report_probe(result: ProbeResult | None) -> None:
    """The breaker's probe: the ``SyncPaused`` gauge (1 open, 0 closed) every run, and a log line saying why."""
    if result is None:
        return
    metrics.add_metric(name=SYNC_PAUSED, unit=MetricUnit.Count, value=1 if result.paused else 0)
    line = result.as_dict()
    if result.paused:
        logger.warning("sync paused", extra=line)
    else:
        logger.info("sync probe", extra=line)


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


def report_reconcile(result: ReconcileResult) -> None:
    """One log line per object and one per run, and the run's EMF counts (one data point each per run)."""
    for report in result.objects:
        line = report.as_log(result.started_at)
        if report.error:
            logger.error("reconcile object failed", extra=line)
        elif report.queued:
            # Each change queued here is a callout that never reached us (lost, refused, or given up by Zuora).
            logger.warning("reconcile object", extra=line)
        else:
            logger.info("reconcile object", extra=line)
    logger.info("reconcile run", extra=result.as_log())
    metrics.add_metric(name=RECOVERED_BY_RECONCILIATION, unit=MetricUnit.Count, value=result.queued)
    metrics.add_metric(name=RECONCILE_RECORDS_READ, unit=MetricUnit.Count, value=result.read)
    metrics.add_metric(name=RECONCILE_MALFORMED_RECORDS, unit=MetricUnit.Count, value=result.malformed)
    lag = result.watermark_lag_seconds()
    if lag is not None:
        metrics.add_metric(name=RECONCILE_WATERMARK_LAG, unit=MetricUnit.Seconds, value=lag)


def report_backfill_step(payload: dict[str, Any], run: BackfillRun | None) -> None:
    """One log line per backfill step: the status the state machine branches on, and each object's counts."""
    objects = (
        {
            p.object_type: {"pages": p.pages, "read": p.read, "queued": p.queued, "malformed": p.malformed}
            for p in run.progress
        }
        if run
        else {}
    )
    level = logger.error if payload["status"] == "failed" else logger.info
    level("backfill step", extra={**payload, "objects": objects})
