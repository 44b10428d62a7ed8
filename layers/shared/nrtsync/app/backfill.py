"""The backfill function (one step of a Step Functions loop): its settings, assembly and reporting."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from nrtsync.app.shared import Lazy, build_sweep, build_zuora_from_secret
from nrtsync.observability import logger
from nrtsync.services.backfill.settings import BackfillSettings

if TYPE_CHECKING:
    from nrtsync.domain.mapping import MappingConfig
    from nrtsync.ports.api_usage import ApiUsageReader
    from nrtsync.ports.backfill import BackfillRun, BackfillStore, QueueBacklog
    from nrtsync.ports.breaker import BreakerReader
    from nrtsync.ports.sweep import ChangeSink, SettledVersions, SweepCheckpoints
    from nrtsync.ports.zuora import ZuoraPort
    from nrtsync.services.backfill.step import BackfillService
    from nrtsync.services.sweep.service import Sweep


backfill_settings = cache(BackfillSettings.from_env)


def build_backfill(
    settings: BackfillSettings,
    *,
    zuora: ZuoraPort | None = None,
    mapping: MappingConfig | None = None,
    store: BackfillStore | None = None,
    checkpoints: SweepCheckpoints | None = None,
    backlog: QueueBacklog | None = None,
    api_usage: ApiUsageReader | None = None,
    breaker: BreakerReader | None = None,
    sink: ChangeSink | None = None,
    versions: SettledVersions | None = None,
    clock: Callable[[], datetime] | None = None,
    monotonic: Callable[[], float] | None = None,
) -> BackfillService:
    """The backfill service: runs in the state table, pacing by the callout queue, the API usage and the breaker.

    The Zuora client is built from the ``ZuoraSecret`` on the first step that needs it (never at cold start, so
    a secret not yet filled in fails that run with its reason, not the function), then kept for the container.
    """
    from nrtsync.adapters.aws.backfill_store import DynamoBackfillStore  # noqa: PLC0415 - see the module docstring
    from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore  # noqa: PLC0415
    from nrtsync.adapters.aws.sqs import SqsChangeQueue  # noqa: PLC0415
    from nrtsync.adapters.aws.state import DynamoVersionStore  # noqa: PLC0415
    from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints  # noqa: PLC0415
    from nrtsync.domain.mapping import cached_mapping  # noqa: PLC0415
    from nrtsync.domain.zoql import BACKFILL_SOURCE  # noqa: PLC0415
    from nrtsync.services.backfill.step import BackfillService, Pacing  # noqa: PLC0415

    resolved_mapping = mapping or cached_mapping(settings.mapping_path)
    # Only what is not given is built: a client built needs a region, which an operator's CLI names itself.
    queue = Lazy(lambda: SqsChangeQueue(settings.queue_url))
    state = Lazy(lambda: DynamoVersionStore(settings.state_table))
    resolved_checkpoints = checkpoints or DynamoSweepCheckpoints(settings.state_table)
    resolved_sink = sink or queue.get()
    resolved_versions = versions or state.get()
    client = Lazy(lambda: zuora or build_zuora_from_secret(settings))
    now: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
    ticks: Callable[[], float] = monotonic or time.monotonic

    def sweep(name: str) -> Sweep:
        return build_sweep(
            name,
            source=BACKFILL_SOURCE,
            state_table=settings.state_table,
            queue_url=settings.queue_url,
            mapping=resolved_mapping,
            zuora=client.get(),
            versions=resolved_versions,
            sink=resolved_sink,
            checkpoints=resolved_checkpoints,
            clock=now,
            monotonic=ticks,
        )

    return BackfillService(
        store=store or DynamoBackfillStore(settings.state_table),
        mapping=resolved_mapping,
        sweeps=sweep,
        checkpoints=resolved_checkpoints,
        backlog=backlog or queue.get(),
        api_usage=api_usage or state.get(),
        breaker=breaker or DynamoBreakerStore(settings.state_table),
        pacing=Pacing(
            max_backlog=settings.max_queue_backlog,
            max_api_percent=settings.max_api_usage_percent,
            wait_seconds=settings.wait_seconds,
            usage_max_age=timedelta(seconds=settings.api_usage_max_age_seconds),
        ),
        clock=now,
        monotonic=ticks,
    )


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
