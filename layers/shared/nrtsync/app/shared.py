"""What more than one function assembles: the handlers' ``Lazy`` holder, the Salesforce and Zuora clients,
the sweep engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nrtsync.services.sweep.settings import SweepSettings
from nrtsync.services.sync.settings import SyncSettings

if TYPE_CHECKING:
    import requests

    from nrtsync.domain.mapping import MappingConfig
    from nrtsync.domain.models.salesforce import SalesforceCredentials
    from nrtsync.domain.models.zuora import ZuoraCredentials
    from nrtsync.ports.salesforce import SalesforcePort
    from nrtsync.ports.secrets import SecretSource
    from nrtsync.ports.sweep import ChangeSink, SettledVersions, SweepCheckpoints
    from nrtsync.ports.zuora import QueryPage, ZuoraPort
    from nrtsync.services.sweep.service import Sweep


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


def build_salesforce(
    settings: SyncSettings,
    *,
    credentials: Callable[[], SalesforceCredentials] | None = None,
    session: requests.Session | None = None,
) -> SalesforcePort:
    """Salesforce through simple-salesforce; credentials from Secrets Manager unless given."""
    from nrtsync.adapters.salesforce import SimpleSalesforceAdapter  # noqa: PLC0415

    if credentials is None:
        from nrtsync.adapters.aws.secrets import CachedSecretSource  # noqa: PLC0415
        from nrtsync.domain.models.salesforce import SalesforceCredentials  # noqa: PLC0415

        secrets = CachedSecretSource(max_age=settings.secret_max_age_seconds)

        def credentials() -> SalesforceCredentials:
            return SalesforceCredentials.model_validate(secrets.get_json(settings.salesforce_secret_id))

    return SimpleSalesforceAdapter(
        credentials,
        api_version=settings.salesforce_api_version,
        timeout_seconds=settings.salesforce_timeout_seconds,
        session=session,
    )


def build_zuora(credentials: ZuoraCredentials, *, session: requests.Session | None = None) -> ZuoraPort:
    """Zuora's REST query client (OAuth client credentials, token cached per warm container).

    Reconciliation and backfill read the ``ZuoraSecret`` and call this.
    """
    from nrtsync.adapters.zuora import ZuoraClient  # noqa: PLC0415 - see nrtsync.app

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
    from nrtsync.adapters.aws.sqs import SqsChangeQueue  # noqa: PLC0415 - see nrtsync.app
    from nrtsync.adapters.aws.state import DynamoVersionStore  # noqa: PLC0415
    from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints  # noqa: PLC0415
    from nrtsync.services.sweep.service import Sweep  # noqa: PLC0415

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
    settings: SweepSettings | SyncSettings,
    *,
    secrets: SecretSource | None = None,
    session: requests.Session | None = None,
) -> ZuoraPort:
    """Zuora's client with the credentials of the ``ZuoraSecret`` (read through the cached secret source); the sync
    function reads it only for two changes of one second, and may have none.

    Raises ``SecretUnavailableError`` (retry later) or ``SecretInvalidError`` naming the secret's bad keys (an
    operator must fill it in: docs/ZUORA.md).
    """
    from pydantic import ValidationError  # noqa: PLC0415

    from nrtsync.adapters.aws.secrets import CachedSecretSource  # noqa: PLC0415
    from nrtsync.domain.models.zuora import ZuoraCredentials  # noqa: PLC0415
    from nrtsync.ports.secrets import SecretInvalidError  # noqa: PLC0415

    if not settings.zuora_secret_id:
        raise SecretInvalidError("no Zuora secret is configured (ZUORA_SECRET_ID)")
    source = secrets or CachedSecretSource(max_age=settings.secret_max_age_seconds)
    document = source.get_json(settings.zuora_secret_id)
    try:
        credentials = ZuoraCredentials.model_validate(document)
    except ValidationError as exc:
        keys = ", ".join(sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]}))
        raise SecretInvalidError(f"the Zuora secret {settings.zuora_secret_id} is not valid: check {keys}") from exc
    return build_zuora(credentials, session=session)


class LazyZuora:
    """A Zuora client built on its first query (the reconcile and backfill functions: from the ZuoraSecret; the
    CLI's local backfill: from the local stack's secret). A secret an operator has not filled in yet then fails
    the run that needs it, not the function's cold start or a command that never queries; a build that fails is
    tried again on the next query."""

    def __init__(self, build: Callable[[], ZuoraPort]) -> None:
        self._build = build
        self._client: ZuoraPort | None = None

    def _get(self) -> ZuoraPort:
        if self._client is None:
            self._client = self._build()
        return self._client

    def query(self, zoql: str) -> QueryPage:
        return self._get().query(zoql)

    def query_more(self, query_locator: str) -> QueryPage:
        return self._get().query_more(query_locator)
