"""The reconcile function (schedule -> Zuora's API -> the queue): its settings, assembly and reporting."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit

from nrtsync.app.shared import LazyZuora, build_sweep, build_zuora_from_secret
from nrtsync.observability import logger, metrics
from nrtsync.observability.names import (
    RECONCILE_MALFORMED_RECORDS,
    RECONCILE_RECORDS_READ,
    RECONCILE_WATERMARK_LAG,
    RECOVERED_BY_RECONCILIATION,
)
from nrtsync.services.reconcile.settings import ReconcileSettings

if TYPE_CHECKING:
    from nrtsync.domain.mapping import MappingConfig
    from nrtsync.ports.breaker import BreakerStore
    from nrtsync.ports.sweep import ChangeSink, SettledVersions, SweepCheckpoints
    from nrtsync.ports.written import WrittenRecords
    from nrtsync.ports.zuora import ZuoraPort
    from nrtsync.services.reconcile.service import Reconciler, ReconcileResult


reconcile_settings = cache(ReconcileSettings.from_env)


def build_reconcile(
    settings: ReconcileSettings,
    *,
    zuora: ZuoraPort | None = None,
    mapping: MappingConfig | None = None,
    versions: SettledVersions | None = None,
    sink: ChangeSink | None = None,
    checkpoints: SweepCheckpoints | None = None,
    breaker_store: BreakerStore | None = None,
    written: WrittenRecords | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> Reconciler:
    """The scheduled reconciliation: the ``reconcile`` sweep of every mapped object, stopped by the breaker."""
    from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore  # noqa: PLC0415
    from nrtsync.adapters.aws.sqs import SqsChangeQueue  # noqa: PLC0415
    from nrtsync.adapters.aws.state import DynamoVersionStore  # noqa: PLC0415
    from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints  # noqa: PLC0415
    from nrtsync.domain.mapping import cached_mapping  # noqa: PLC0415
    from nrtsync.domain.zoql import RECONCILE_SOURCE  # noqa: PLC0415
    from nrtsync.services.reconcile.lost_deletes import LostDeletes  # noqa: PLC0415
    from nrtsync.services.reconcile.service import RECONCILE_SWEEP, Reconciler, ReconcileWindows  # noqa: PLC0415

    mapping = mapping or cached_mapping(settings.mapping_path)
    checkpoints = checkpoints or DynamoSweepCheckpoints(settings.state_table)
    # One Zuora client (one token) and one queue for both sweeps.
    zuora = zuora or LazyZuora(lambda: build_zuora_from_secret(settings))
    sink = sink or SqsChangeQueue(settings.queue_url)
    sweep = build_sweep(
        RECONCILE_SWEEP,
        source=RECONCILE_SOURCE,
        state_table=settings.state_table,
        queue_url=settings.queue_url,
        mapping=mapping,
        zuora=zuora,
        versions=versions,
        sink=sink,
        checkpoints=checkpoints,
        clock=clock,
        monotonic=monotonic,
    )
    lost_deletes = LostDeletes(
        zuora=zuora,
        written=written or DynamoVersionStore(settings.state_table),
        sink=sink,
        mapping=mapping,
        clock=clock,
        monotonic=monotonic,
    )
    return Reconciler(
        sweep=sweep,
        lost_deletes=lost_deletes,
        deletes_hour=settings.deletes_hour,
        checkpoints=checkpoints,
        breaker=breaker_store or DynamoBreakerStore(settings.state_table),
        mapping=mapping,
        windows=ReconcileWindows(
            overlap=timedelta(seconds=settings.overlap_seconds),
            settle=timedelta(seconds=settings.settle_seconds),
            lookback=timedelta(hours=settings.lookback_hours),
        ),
        clock=clock,
    )


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
    logger.info("reconcile run", extra=result.as_dict())
    metrics.add_metric(name=RECOVERED_BY_RECONCILIATION, unit=MetricUnit.Count, value=result.queued)
    metrics.add_metric(name=RECONCILE_RECORDS_READ, unit=MetricUnit.Count, value=result.read)
    metrics.add_metric(name=RECONCILE_MALFORMED_RECORDS, unit=MetricUnit.Count, value=result.malformed)
    lag = result.watermark_lag_seconds()
    if lag is not None:
        metrics.add_metric(name=RECONCILE_WATERMARK_LAG, unit=MetricUnit.Seconds, value=lag)
