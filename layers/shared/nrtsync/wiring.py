"""Wiring: the one place that puts each function's service together from its settings and adapters.

``build_ingest``, ``build_authorizer``, ``build_sync`` and ``build_metrics`` take a keyword override for every
port, so a test, the local stack, the benchmarks and the fault drill build exactly what production builds with
only the parts they replace. ``Lazy`` is the handlers' one holder: built on first use, kept for the warm
container, replaceable before the first invocation.

Services import ports, never adapters; only this module imports both. Each builder imports its adapters when
called, so a function's cold start loads only what it uses (the ingest function never loads simple-salesforce).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

    from nrtsync.authorizer import CalloutAuthorizer
    from nrtsync.backfill import BackfillService
    from nrtsync.breaker import CircuitBreaker
    from nrtsync.ingest import CalloutEndpoint
    from nrtsync.mapping import MappingConfig
    from nrtsync.metrics.service import MetricsService
    from nrtsync.models.salesforce import SalesforceCredentials
    from nrtsync.models.zuora import ZuoraCredentials
    from nrtsync.ports.backfill import ApiUsageReader, BackfillStore, QueueBacklog
    from nrtsync.ports.breaker import BreakerReader, BreakerStore, EventSourceSwitch
    from nrtsync.ports.ingest import ChangeQueue, SecretSource
    from nrtsync.ports.metrics import ApiUsageSource, MetricPublisher, MetricsHistory
    from nrtsync.ports.sweep import ChangeSink, SettledVersions, SweepCheckpoints
    from nrtsync.ports.sync import HistoryWriter, RetryScheduler, SalesforcePort, VersionStore
    from nrtsync.ports.zuora import QueryPage, ZuoraPort
    from nrtsync.reconcile import Reconciler
    from nrtsync.settings import (
        AuthorizerSettings,
        BackfillSettings,
        IngestSettings,
        MetricsSettings,
        ReconcileSettings,
        SweepSettings,
        SyncSettings,
    )
    from nrtsync.sweep import Sweep
    from nrtsync.sync import SyncService


class Lazy[T]:
    """One instance per warm container, built on first use; ``use`` installs another (tests, the local stack)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._instance: T | None = None

    def get(self) -> T:
        if self._instance is None:
            self._instance = self._build()
        return self._instance

    def use(self, replacement: T | None) -> None:
        """Install ``replacement``; None drops the instance, so the next ``get`` builds from settings again."""
        self._instance = replacement


def build_ingest(
    settings: IngestSettings,
    *,
    queue: ChangeQueue | None = None,
    secrets: SecretSource | None = None,
    object_types: frozenset[str] | None = None,
) -> CalloutEndpoint:
    """The callout endpoint: changes to SQS, credentials from Secrets Manager, object types from the mapping."""
    from nrtsync.adapters.secrets import CachedSecretSource  # noqa: PLC0415 - see the module docstring
    from nrtsync.adapters.sqs import SqsChangeQueue  # noqa: PLC0415
    from nrtsync.ingest import CalloutEndpoint  # noqa: PLC0415
    from nrtsync.mapping import cached_mapping  # noqa: PLC0415

    return CalloutEndpoint(
        settings,
        queue=queue or SqsChangeQueue(settings.queue_url),
        secrets=secrets or CachedSecretSource(max_age=settings.secret_max_age_seconds),
        object_types=object_types or frozenset(cached_mapping(settings.mapping_path).objects),
    )


def build_authorizer(settings: AuthorizerSettings, *, secrets: SecretSource | None = None) -> CalloutAuthorizer:
    """The callout authorizer: credentials from Secrets Manager."""
    from nrtsync.adapters.secrets import CachedSecretSource  # noqa: PLC0415
    from nrtsync.authorizer import CalloutAuthorizer  # noqa: PLC0415

    return CalloutAuthorizer(settings, secrets=secrets or CachedSecretSource(max_age=settings.secret_max_age_seconds))


def build_salesforce(
    settings: SyncSettings,
    *,
    credentials: Callable[[], SalesforceCredentials] | None = None,
    session: requests.Session | None = None,
) -> SalesforcePort:
    """Salesforce through simple-salesforce; credentials from Secrets Manager unless given."""
    from nrtsync.adapters.salesforce import SimpleSalesforceAdapter  # noqa: PLC0415

    if credentials is None:
        from nrtsync.adapters.secrets import CachedSecretSource  # noqa: PLC0415
        from nrtsync.models.salesforce import SalesforceCredentials  # noqa: PLC0415

        secrets = CachedSecretSource(max_age=settings.secret_max_age_seconds)

        def credentials() -> SalesforceCredentials:
            return SalesforceCredentials.model_validate(secrets.get_json(settings.salesforce_secret_id))

    return SimpleSalesforceAdapter(
        credentials,
        api_version=settings.salesforce_api_version,
        timeout_seconds=settings.salesforce_timeout_seconds,
        session=session,
    )


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
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
    jitter: Callable[[], float] = random.random,
) -> SyncService:
    """The sync service: Salesforce through simple-salesforce, state and history in DynamoDB, retries on SQS, and
    the circuit breaker (state in DynamoDB, the function's own SQS event source mapping through the Lambda API)."""
    from nrtsync.adapters.history import DynamoHistoryWriter  # noqa: PLC0415
    from nrtsync.adapters.sqs import SqsChangeQueue  # noqa: PLC0415
    from nrtsync.adapters.state import DynamoVersionStore  # noqa: PLC0415
    from nrtsync.mapping import cached_mapping  # noqa: PLC0415
    from nrtsync.sync import SyncService  # noqa: PLC0415

    salesforce = salesforce or build_salesforce(settings)
    state = state or DynamoVersionStore(settings.state_table)
    breaker = build_breaker(
        settings, salesforce=salesforce, state=state, store=breaker_store, event_source=event_source, clock=clock
    )
    return SyncService(
        settings,
        mapping=mapping or cached_mapping(settings.mapping_path),
        salesforce=salesforce,
        state=state,
        history=history or DynamoHistoryWriter(settings.history_table, ttl_days=settings.history_ttl_days),
        retries=retries or SqsChangeQueue(settings.queue_url),
        breaker=breaker,
        clock=clock,
        monotonic=monotonic,
        jitter=jitter,
    )


def build_breaker(
    settings: SyncSettings,
    *,
    salesforce: SalesforcePort,
    state: VersionStore,
    store: BreakerStore | None = None,
    event_source: EventSourceSwitch | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CircuitBreaker:
    """The circuit breaker; the Lambda client is made only when the mapping is first switched (never on a healthy
    invocation), and the function name and queue ARN are checked then, naming the missing variable."""
    from nrtsync.adapters.breaker_store import DynamoBreakerStore  # noqa: PLC0415
    from nrtsync.breaker import CircuitBreaker  # noqa: PLC0415

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
            from nrtsync.adapters.event_source import LambdaEventSourceSwitch  # noqa: PLC0415
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


def build_metrics(
    settings: MetricsSettings,
    *,
    history: MetricsHistory | None = None,
    api_usage: ApiUsageSource | None = None,
    publisher: MetricPublisher | None = None,
    clock: Callable[[], datetime] | None = None,
) -> MetricsService:
    """The metrics service: the history and the API usage from DynamoDB, published to CloudWatch."""
    from nrtsync.adapters.cloudwatch import CloudWatchPublisher  # noqa: PLC0415
    from nrtsync.adapters.history_reader import DynamoApiUsageSource, DynamoMetricsHistory  # noqa: PLC0415
    from nrtsync.metrics.service import MetricsService  # noqa: PLC0415

    return MetricsService(
        settings,
        history=history
        or DynamoMetricsHistory(settings.history_table, read_concurrency=settings.history_read_concurrency),
        api_usage=api_usage or DynamoApiUsageSource(settings.state_table),
        publisher=publisher or CloudWatchPublisher(),
        clock=clock,
    )


def build_zuora(credentials: ZuoraCredentials, *, session: requests.Session | None = None) -> ZuoraPort:
    """Zuora's REST query client (OAuth client credentials, token cached per warm container).

    Reconciliation and backfill read the ``ZuoraSecret`` and call this.
    """
    from nrtsync.adapters.zuora import ZuoraClient  # noqa: PLC0415 - see the module docstring

    return ZuoraClient(credentials, session=session)


def build_sweep(
    name: str,
    *,
    source: str,
    state_table: str,
    queue_url: str,
    mapping: MappingConfig,
    zuora: ZuoraPort,
    versions: SettledVersions | None = None,
    sink: ChangeSink | None = None,
    checkpoints: SweepCheckpoints | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> Sweep:
    """A sweep of Zuora's records into the callout queue (reconciliation: ``reconcile``; a backfill: its own name).

    Its checkpoints and the settled versions it compares with live in the state table; its changes go to the
    callout queue, where the sync function takes them as it takes callouts.
    """
    from nrtsync.adapters.sqs import SqsChangeQueue  # noqa: PLC0415 - see the module docstring
    from nrtsync.adapters.state import DynamoVersionStore  # noqa: PLC0415
    from nrtsync.adapters.sweep_store import DynamoSweepCheckpoints  # noqa: PLC0415
    from nrtsync.sweep import Sweep  # noqa: PLC0415

    return Sweep(
        name,
        zuora=zuora,
        mapping=mapping,
        versions=versions or DynamoVersionStore(state_table),
        sink=sink or SqsChangeQueue(queue_url),
        checkpoints=checkpoints or DynamoSweepCheckpoints(state_table),
        source=source,
        clock=clock,
        monotonic=monotonic,
    )


def build_zuora_from_secret(
    settings: SweepSettings, *, secrets: SecretSource | None = None, session: requests.Session | None = None
) -> ZuoraPort:
    """Zuora's client with the credentials of the ``ZuoraSecret`` (read through the cached secret source).

    Raises ``SecretUnavailableError`` (retry later) or ``SecretInvalidError`` naming the secret's bad keys (an
    operator must fill it in: docs/ZUORA.md).
    """
    from pydantic import ValidationError  # noqa: PLC0415

    from nrtsync.adapters.secrets import CachedSecretSource  # noqa: PLC0415
    from nrtsync.models.zuora import ZuoraCredentials  # noqa: PLC0415
    from nrtsync.ports.ingest import SecretInvalidError  # noqa: PLC0415

    source = secrets or CachedSecretSource(max_age=settings.secret_max_age_seconds)
    document = source.get_json(settings.zuora_secret_id)
    try:
        credentials = ZuoraCredentials.model_validate(document)
    except ValidationError as exc:
        keys = ", ".join(sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]}))
        raise SecretInvalidError(f"the Zuora secret {settings.zuora_secret_id} is not valid: check {keys}") from exc
    return build_zuora(credentials, session=session)


# --- Reconciliation -----------------------------------------------------------------------------------------


class _LazyZuora:
    """The Zuora client from the ZuoraSecret, read on the first query (not at build: a secret an operator has not
    filled in yet fails the run that needs it, and the next run reads it again)."""

    def __init__(self, settings: SweepSettings) -> None:
        self._settings = settings
        self._client: ZuoraPort | None = None

    def _get(self) -> ZuoraPort:
        if self._client is None:
            self._client = build_zuora_from_secret(self._settings)
        return self._client

    def query(self, zoql: str) -> QueryPage:
        return self._get().query(zoql)

    def query_more(self, query_locator: str) -> QueryPage:
        return self._get().query_more(query_locator)


def build_reconcile(
    settings: ReconcileSettings,
    *,
    zuora: ZuoraPort | None = None,
    mapping: MappingConfig | None = None,
    versions: SettledVersions | None = None,
    sink: ChangeSink | None = None,
    checkpoints: SweepCheckpoints | None = None,
    breaker_store: BreakerStore | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> Reconciler:
    """The scheduled reconciliation: the ``reconcile`` sweep of every mapped object, stopped by the breaker."""
    from nrtsync.adapters.breaker_store import DynamoBreakerStore  # noqa: PLC0415
    from nrtsync.adapters.sweep_store import DynamoSweepCheckpoints  # noqa: PLC0415
    from nrtsync.mapping import cached_mapping  # noqa: PLC0415
    from nrtsync.reconcile import RECONCILE_SWEEP, Reconciler, ReconcileWindows  # noqa: PLC0415
    from nrtsync.zoql import RECONCILE_SOURCE  # noqa: PLC0415

    mapping = mapping or cached_mapping(settings.mapping_path)
    checkpoints = checkpoints or DynamoSweepCheckpoints(settings.state_table)
    sweep = build_sweep(
        RECONCILE_SWEEP,
        source=RECONCILE_SOURCE,
        state_table=settings.state_table,
        queue_url=settings.queue_url,
        mapping=mapping,
        zuora=zuora or _LazyZuora(settings),
        versions=versions,
        sink=sink,
        checkpoints=checkpoints,
        clock=clock,
        monotonic=monotonic,
    )
    return Reconciler(
        sweep=sweep,
        checkpoints=checkpoints,
        breaker=breaker_store or DynamoBreakerStore(settings.state_table),
        mapping=mapping,
        windows=ReconcileWindows(
            overlap=timedelta(seconds=settings.overlap_seconds),
            settle=timedelta(seconds=settings.settle_seconds),
            lookback=timedelta(hours=settings.lookback_hours),
        ),
        clock=clock,
        monotonic=monotonic,
    )


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
    from nrtsync.adapters.backfill_store import DynamoBackfillStore  # noqa: PLC0415 - see the module docstring
    from nrtsync.adapters.breaker_store import DynamoBreakerStore  # noqa: PLC0415
    from nrtsync.adapters.sqs import SqsChangeQueue  # noqa: PLC0415
    from nrtsync.adapters.state import DynamoVersionStore  # noqa: PLC0415
    from nrtsync.adapters.sweep_store import DynamoSweepCheckpoints  # noqa: PLC0415
    from nrtsync.backfill import BackfillService, Pacing  # noqa: PLC0415
    from nrtsync.mapping import cached_mapping  # noqa: PLC0415
    from nrtsync.zoql import BACKFILL_SOURCE  # noqa: PLC0415

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
