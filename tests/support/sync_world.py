"""A sync service wired to moto-backed DynamoDB tables and the in-memory Salesforce, plus message builders."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore
from nrtsync.adapters.aws.history import DynamoHistoryWriter
from nrtsync.adapters.aws.holds import DynamoHoldStore
from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.zuora import ZuoraPort
from nrtsync.services.breaker.service import CircuitBreaker
from nrtsync.services.sync.service import QueueMessage, SyncService
from nrtsync.services.sync.settings import SyncSettings
from nrtsync_fakes.breaker import FakeEventSourceSwitch
from nrtsync_fakes.queue import FakeRetryScheduler, MemoryQueue
from nrtsync_fakes.salesforce import FakeSalesforce
from nrtsync_fakes.zuora import LINKED_CRM_ID
from nrtsync_local.template import load_template, table_definition

STATE_TABLE = "sync-state"
HISTORY_TABLE = "sync-history"
T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def create_tables(client: Any, *, state: str = STATE_TABLE, history: str = HISTORY_TABLE) -> None:
    """The state and history tables as template.yaml declares them (keys, billing), so tests cannot drift."""
    template = load_template()
    for name, logical_id in ((state, "SyncStateTable"), (history, "SyncHistoryTable")):
        client.create_table(TableName=name, **table_definition(template, logical_id))


def settings(**overrides: Any) -> SyncSettings:
    env = {
        "CALLOUT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/callouts",
        "SYNC_STATE_TABLE": STATE_TABLE,
        "SYNC_HISTORY_TABLE": HISTORY_TABLE,
        "SALESFORCE_SECRET_ID": "salesforce",
    } | {k: str(v) for k, v in overrides.items()}
    return SyncSettings.from_env(env)


_message_ids = itertools.count(1)


# ``change("Account", ..., CrmId=NO_CRM_ID)``: a callout that does not carry the field at all.
NO_CRM_ID = object()


def change(
    object_type: str = "Account",
    record_id: str = "A1",
    *,
    updated: datetime = T0,
    received: datetime | None = None,
    **fields: Any,
) -> QueuedChange:
    received_at = received or updated + timedelta(seconds=1)
    if object_type == "Subscription":
        # A subscription's Name is its number (one Salesforce record per number): here the test's record id,
        # unless the test gives one.
        fields = {"Name": record_id, **fields}
    fields = fields or {"Name": f"{record_id} at {updated.isoformat()}"}
    if object_type == "Account" and "CrmId" not in fields:
        # Salesforce refuses a billing account without its CRM Account (a master-detail): a test about something
        # else links it; one about the link says CrmId="" or NO_CRM_ID itself.
        fields = {**fields, "CrmId": LINKED_CRM_ID}
    fields = {name: value for name, value in fields.items() if value is not NO_CRM_ID}
    return QueuedChange(
        object_type=object_type,
        record_id=record_id,
        updated_date=updated,
        fields=fields,
        # Zuora's retry of a notification keeps its id: the same arguments make the same notification, two changes
        # received apart are two notifications (even within one second of Zuora's).
        notification_id=f"n-{object_type}-{record_id}-{updated.timestamp()}-{received_at.timestamp()}",
        received_at=received_at,
    )


def message(queued: QueuedChange, *, receive_count: int = 1) -> QueueMessage:
    n = next(_message_ids)
    return QueueMessage(
        message_id=f"m{n}", receipt_handle=f"r{n}", body=queued.model_dump_json(), receive_count=receive_count
    )


@dataclass
class SyncWorld:
    """Everything a sync test needs; ``run`` processes one batch."""

    dynamodb: Any
    salesforce: FakeSalesforce = field(default_factory=FakeSalesforce)
    retries: FakeRetryScheduler = field(default_factory=FakeRetryScheduler)
    queue: MemoryQueue = field(default_factory=MemoryQueue)  # where a released held change that must wait goes
    overrides: dict[str, Any] = field(default_factory=dict)
    monotonic: Callable[[], float] = time.monotonic  # the service's clock for its deadline
    switch: FakeEventSourceSwitch = field(default_factory=FakeEventSourceSwitch)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    holds: bool = False  # True: accounts without a CRM link are held, as the deployed function does
    zuora: ZuoraPort | None = None  # the sync reads Zuora only for two changes of one second

    def service(self) -> SyncService:
        return SyncService(
            settings(**self.overrides),
            mapping=load_mapping(),
            salesforce=self.salesforce,
            state=self.state,
            history=DynamoHistoryWriter(HISTORY_TABLE, ttl_days=30, client=self.dynamodb),
            retries=self.retries,
            breaker=self.breaker(),
            holds=DynamoHoldStore(STATE_TABLE, client=self.dynamodb) if self.holds else None,
            queue=self.queue,
            zuora=self.zuora,
            clock=self.clock,
            monotonic=self.monotonic,
        )

    def breaker(self) -> CircuitBreaker:
        """The breaker as wiring builds it: state in the (moto) state table, the mapping faked."""
        config = settings(**self.overrides)
        return CircuitBreaker(
            store=self.breaker_store,
            switch=self.switch,
            salesforce=self.salesforce,
            usage_store=self.state,
            failure_threshold=config.breaker_failure_threshold,
            budget_percent=config.api_usage_budget_percent,
            clock=self.clock,
        )

    @property
    def breaker_store(self) -> DynamoBreakerStore:
        return DynamoBreakerStore(STATE_TABLE, client=self.dynamodb)

    @property
    def state(self) -> DynamoVersionStore:
        return DynamoVersionStore(STATE_TABLE, client=self.dynamodb)

    def run(self, *messages: QueueMessage, remaining_seconds: float = 60.0) -> Any:
        return self.service().run(list(messages), deadline=self.monotonic() + remaining_seconds)

    def history(self, pk_prefix: str) -> list[dict[str, Any]]:
        table = boto3.resource("dynamodb", region_name="eu-west-1").Table(HISTORY_TABLE)
        items: list[dict[str, Any]] = table.scan()["Items"]
        return [i for i in items if str(i["pk"]).startswith(pk_prefix)]

    def sf_record(self, sobject: str, ext_id: str) -> dict[str, Any]:
        """The record Salesforce holds; fails the test when there is none."""
        record = self.salesforce.records.get(sobject, {}).get(ext_id)
        assert record is not None, f"{sobject} {ext_id} is not in Salesforce"
        return record
