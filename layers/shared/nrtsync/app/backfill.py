"""The backfill: the function's step (settings, assembly, reporting) and the CLI's administration (assembly)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from nrtsync.app.shared import Lazy, LazyZuora, build_zuora_from_secret
from nrtsync.observability import logger
from nrtsync.services.backfill.settings import BackfillSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from nrtsync.domain.mapping import MappingConfig
    from nrtsync.ports.api_usage import ApiUsageReader
    from nrtsync.ports.backfill import BackfillStore, QueueBacklog
    from nrtsync.ports.breaker import BreakerReader
    from nrtsync.ports.sweep import ChangeSink, SettledVersions, SweepCheckpoints
    from nrtsync.ports.zuora import ZuoraPort
    from nrtsync.services.backfill.admin import BackfillAdmin
    from nrtsync.services.backfill.step import BackfillStep, Pacing, StepRefused, StepResult


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
) -> BackfillStep:
    """The backfill function's step service: runs in the state table, pacing by the callout queue, the API usage
    and the breaker.

    The Zuora client is built from the ``ZuoraSecret`` on the first query (never at cold start, so a secret not
    yet filled in fails that run with its reason, not the function), then kept for the container.
    """
    from nrtsync.adapters.aws.api_usage import DynamoApiUsageStore  # noqa: PLC0415 - see nrtsync.app
    from nrtsync.adapters.aws.backfill_store import DynamoBackfillStore  # noqa: PLC0415
    from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore  # noqa: PLC0415
    from nrtsync.adapters.aws.sqs import SqsChangeQueue  # noqa: PLC0415
    from nrtsync.adapters.aws.state import DynamoVersionStore  # noqa: PLC0415
    from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints  # noqa: PLC0415
    from nrtsync.domain.mapping import cached_mapping  # noqa: PLC0415

    queue = Lazy(lambda: SqsChangeQueue(settings.queue_url))  # one client for the sink and the backlog
    return assemble_backfill_step(
        pacing=settings.pacing(),
        mapping=mapping or cached_mapping(settings.mapping_path),
        zuora=zuora or LazyZuora(lambda: build_zuora_from_secret(settings)),
        store=store or DynamoBackfillStore(settings.state_table),
        checkpoints=checkpoints or DynamoSweepCheckpoints(settings.state_table),
        backlog=backlog or queue.get(),
        api_usage=api_usage or DynamoApiUsageStore(settings.state_table),
        breaker=breaker or DynamoBreakerStore(settings.state_table),
        sink=sink or queue.get(),
        versions=versions or DynamoVersionStore(settings.state_table),
        clock=clock or (lambda: datetime.now(UTC)),
        monotonic=monotonic or time.monotonic,
    )


def assemble_backfill_step(
    *,
    pacing: Pacing,
    mapping: MappingConfig,
    zuora: ZuoraPort,
    store: BackfillStore,
    checkpoints: SweepCheckpoints,
    backlog: QueueBacklog,
    api_usage: ApiUsageReader,
    breaker: BreakerReader,
    sink: ChangeSink,
    versions: SettledVersions,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> BackfillStep:
    """The step service from its parts (the function's, or the CLI's for a run it steps itself)."""
    from nrtsync.domain.zoql import BACKFILL_SOURCE  # noqa: PLC0415 - see nrtsync.app
    from nrtsync.services.backfill.step import BackfillStep  # noqa: PLC0415
    from nrtsync.services.sweep.service import Sweep  # noqa: PLC0415

    def sweep(name: str) -> Sweep:
        return Sweep(
            name,
            source=BACKFILL_SOURCE,
            mapping=mapping,
            zuora=zuora,
            versions=versions,
            sink=sink,
            checkpoints=checkpoints,
            clock=clock,
            monotonic=monotonic,
        )

    return BackfillStep(
        store=store,
        sweeps=sweep,
        checkpoints=checkpoints,
        backlog=backlog,
        api_usage=api_usage,
        breaker=breaker,
        pacing=pacing,
        clock=clock,
    )


def build_backfill_admin(
    state_table: str, *, mapping: MappingConfig, dynamodb: DynamoDBClient | None = None
) -> BackfillAdmin:
    """The CLI's backfill administration: runs and their cursors in the state table (no Zuora, no queue)."""
    from nrtsync.adapters.aws.backfill_store import DynamoBackfillStore  # noqa: PLC0415 - see nrtsync.app
    from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints  # noqa: PLC0415
    from nrtsync.services.backfill.admin import BackfillAdmin  # noqa: PLC0415

    return BackfillAdmin(
        store=DynamoBackfillStore(state_table, client=dynamodb),
        mapping=mapping,
        checkpoints=DynamoSweepCheckpoints(state_table, client=dynamodb),
    )


def report_backfill_step(result: StepResult | StepRefused) -> None:
    """One log line per backfill step: the status the state machine branches on, and each object's counts."""
    objects = (
        {
            p.object_type: {"pages": p.pages, "read": p.read, "queued": p.queued, "malformed": p.malformed}
            for p in result.run.progress
        }
        if result.run
        else {}
    )
    payload = result.as_dict()
    level = logger.error if payload["status"] == "failed" else logger.info
    level("backfill step", extra={**payload, "objects": objects})
