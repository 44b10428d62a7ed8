"""The sync function (SQS -> Salesforce, and the circuit breaker's probe on its schedule): its settings,
assembly and reporting."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit

from nrtsync.app.shared import Lazy, LazyZuora, build_salesforce, build_zuora_from_secret
from nrtsync.observability import logger, metrics
from nrtsync.observability.names import (
    BATCH_SIZE,
    OLDEST_WAITING_CHANGE_AGE,
    RECORDS_DUPLICATE,
    RECORDS_FAILED,
    RECORDS_STALE,
    RECORDS_SUPERSEDED,
    RECORDS_WAITING,
    RECORDS_WRITTEN,
    SALESFORCE_API_CALLS,
    SYNC_PAUSED,
)
from nrtsync.services.sync.settings import SyncSettings

if TYPE_CHECKING:
    from nrtsync.domain.mapping import MappingConfig
    from nrtsync.ports.api_usage import ApiUsageStore
    from nrtsync.ports.breaker import BreakerStore, EventSourceSwitch
    from nrtsync.ports.history import HistoryWriter, RecordOutcome
    from nrtsync.ports.holds import HoldStore
    from nrtsync.ports.queue import ChangeQueue, RetryScheduler
    from nrtsync.ports.salesforce import SalesforcePort
    from nrtsync.ports.state import VersionStore
    from nrtsync.ports.zuora import ZuoraPort
    from nrtsync.services.breaker.service import CircuitBreaker, ProbeResult
    from nrtsync.services.sync.service import SyncResult, SyncService


sync_settings = cache(SyncSettings.from_env)


def build_sync(
    settings: SyncSettings,
    *,
    mapping: MappingConfig | None = None,
    salesforce: SalesforcePort | None = None,
    state: VersionStore | None = None,
    history: HistoryWriter | None = None,
    retries: RetryScheduler | None = None,
    breaker_store: BreakerStore | None = None,
    event_source: EventSourceSwitch | None = None,
    holds: HoldStore | None = None,
    queue: ChangeQueue | None = None,
    zuora: ZuoraPort | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
    jitter: Callable[[], float] = random.random,
) -> SyncService:
    """The sync service: Salesforce through simple-salesforce, state and history in DynamoDB, retries on SQS (held
    changes that must wait sent to the callout queue anew), and the circuit breaker (state in DynamoDB, the
    function's own SQS event source mapping through the Lambda API)."""
    from nrtsync.adapters.aws.history import DynamoHistoryWriter  # noqa: PLC0415
    from nrtsync.adapters.aws.holds import DynamoHoldStore  # noqa: PLC0415
    from nrtsync.adapters.aws.sqs import SqsChangeQueue  # noqa: PLC0415
    from nrtsync.adapters.aws.state import DynamoVersionStore  # noqa: PLC0415
    from nrtsync.domain.mapping import cached_mapping  # noqa: PLC0415
    from nrtsync.services.sync.service import SyncService  # noqa: PLC0415

    salesforce = salesforce or build_salesforce(settings)
    state = state or DynamoVersionStore(settings.state_table)
    callout_queue = Lazy(lambda: SqsChangeQueue(settings.queue_url))  # one client for the retries and the re-sends
    breaker = build_breaker(
        settings, salesforce=salesforce, state=state, store=breaker_store, event_source=event_source, clock=clock
    )
    return SyncService(
        settings,
        mapping=mapping or cached_mapping(settings.mapping_path),
        salesforce=salesforce,
        state=state,
        history=history or DynamoHistoryWriter(settings.history_table, ttl_days=settings.history_ttl_days),
        retries=retries or callout_queue.get(),
        breaker=breaker,
        holds=holds or DynamoHoldStore(settings.state_table),
        queue=queue or callout_queue.get(),
        # Built on the first same-second change only: a secret not filled in then costs nothing but that change's
        # fallback (marked for reconcile).
        zuora=zuora or (LazyZuora(lambda: build_zuora_from_secret(settings)) if settings.zuora_secret_id else None),
        clock=clock,
        monotonic=monotonic,
        jitter=jitter,
    )


def build_breaker(
    settings: SyncSettings,
    *,
    salesforce: SalesforcePort,
    state: ApiUsageStore,
    store: BreakerStore | None = None,
    event_source: EventSourceSwitch | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CircuitBreaker:
    """The circuit breaker; the Lambda client is made only when the mapping is first switched (never on a healthy
    invocation), and the function name and queue ARN are checked then, naming the missing variable."""
    from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore  # noqa: PLC0415
    from nrtsync.services.breaker.service import CircuitBreaker  # noqa: PLC0415

    return CircuitBreaker(
        store=store or DynamoBreakerStore(settings.state_table),
        switch=event_source or _LazySwitch(settings),
        salesforce=salesforce,
        usage_store=state,
        failure_threshold=settings.breaker_failure_threshold,
        budget_percent=settings.api_usage_budget_percent,
        clock=clock,
    )


class _LazySwitch:
    """The Lambda event source switch, built on first use (keeps boto3's Lambda client out of a cold start)."""

    def __init__(self, settings: SyncSettings) -> None:
        self._settings = settings
        self._switch: EventSourceSwitch | None = None

    def set_enabled(self, enabled: bool) -> None:
        if self._switch is None:
            from nrtsync.adapters.aws.event_source import LambdaEventSourceSwitch  # noqa: PLC0415
            from nrtsync.ports.breaker import BreakerUnavailableError  # noqa: PLC0415

            missing = [
                name
                for name, value in (
                    ("AWS_LAMBDA_FUNCTION_NAME", self._settings.function_name),
                    ("CALLOUT_QUEUE_ARN", self._settings.queue_arn),
                )
                if not value
            ]
            if missing:
                raise BreakerUnavailableError(f"cannot switch the event source mapping: {', '.join(missing)} unset")
            self._switch = LambdaEventSourceSwitch(str(self._settings.function_name), str(self._settings.queue_arn))
        self._switch.set_enabled(enabled)


# The session log line's key for each per-session count (the dashboard's Logs Insights queries read the keys).
SESSION_COUNTS: tuple[tuple[str, str], ...] = (
    (RECORDS_WRITTEN, "written"),
    (RECORDS_SUPERSEDED, "superseded"),
    (RECORDS_DUPLICATE, "duplicates"),
    (RECORDS_STALE, "stale_skipped"),
    (RECORDS_WAITING, "waiting"),
    (RECORDS_FAILED, "failed"),
    (SALESFORCE_API_CALLS, "api_calls"),
)


def report_session(result: SyncResult) -> None:
    """One structured log line per session (the Sync History view queries it) and its EMF counts.

    The session's API usage reading is in the log line only: the metrics function publishes the org's
    ``ApiUsagePercent`` from the same reading (the state table's), under that one name.
    """
    session = result.session
    line = session.as_log()
    logger.info("sync session", extra=line)
    for name, key in SESSION_COUNTS:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=line[key])
    metrics.add_metric(name=BATCH_SIZE, unit=MetricUnit.Count, value=session.records_in)
    metrics.add_metric(
        name=OLDEST_WAITING_CHANGE_AGE, unit=MetricUnit.Seconds, value=oldest_waiting_seconds(result.outcomes)
    )
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


def oldest_waiting_seconds(outcomes: Sequence[RecordOutcome]) -> float:
    """How long the oldest change this session left waiting has been in the pipeline (from its callout's
    arrival to this session's decision); 0 when every change was settled."""
    from nrtsync.domain.outcomes import Outcome  # noqa: PLC0415

    return max((o.sync_ms for o in outcomes if o.outcome is Outcome.WAITING), default=0) / 1000


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
