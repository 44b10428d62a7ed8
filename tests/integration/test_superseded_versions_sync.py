"""Subscription versions with ``versions.superseded`` ``delete``: a record per version, the superseded one deleted.

The sync service with the real DynamoDB state adapter (moto in process) and the real Salesforce adapter over HTTPS
to the Salesforce stand-in; the lost-deletes sweep of a reconcile run with the real Zuora client and the Zuora
stand-in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from nrtsync.adapters.aws.history import DynamoHistoryWriter
from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.adapters.salesforce import SimpleSalesforceAdapter
from nrtsync.adapters.salesforce_describe import SalesforceDescribeClient
from nrtsync.adapters.zuora import ZuoraClient
from nrtsync.domain.mapping import MappingConfig, load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.models.salesforce import SalesforceCredentials
from nrtsync.domain.models.zuora import ZuoraCredentials
from nrtsync.services.preflight.service import blocking, check_salesforce
from nrtsync.services.reconcile.lost_deletes import LostDeletes
from nrtsync.services.reconcile.service import RECONCILE_SWEEP, Reconciler, ReconcileWindows
from nrtsync.services.sweep.service import Sweep
from nrtsync.services.sync.service import SyncResult, SyncService
from nrtsync_fakes.breaker import MemoryBreakerStore
from nrtsync_fakes.queue import FakeRetryScheduler, MemorySink
from nrtsync_fakes.sweep import MemoryCheckpoints
from nrtsync_local.standin.process import StandinClient, ZuoraStandinClient
from tests.support.mappings import VERSION_EXTERNAL_ID, per_version_subscriptions
from tests.support.salesforce import running_salesforce_standin
from tests.support.sync_world import HISTORY_TABLE, STATE_TABLE, T0, message, settings
from tests.support.zuora import running_zuora_standin

pytestmark = pytest.mark.integration

MAPPING = per_version_subscriptions()
SUBSCRIPTIONS = "Zuora__Subscription__c"
NUMBER = "A-S00000001"
V1, V2 = "8ad0887e-v1", "8ad0887e-v2"
NOW = T0 + timedelta(hours=1)
RUN_SECONDS = 900  # a reconcile run's timeout: it keeps a reserve for reporting back from its deadline


@pytest.fixture(scope="module")
def salesforce_standin() -> Iterator[StandinClient]:
    with running_salesforce_standin() as client:
        yield client


@pytest.fixture(scope="module")
def zuora_standin() -> Iterator[ZuoraStandinClient]:
    with running_zuora_standin() as client:
        yield client


def version(zuora_id: str, number: int, *, status: str, at: timedelta) -> QueuedChange:
    """A subscription version's callout as the template sends it: its own Id, Name (the number), Version, Status."""
    updated = T0 + at
    return QueuedChange(
        object_type="Subscription",
        record_id=zuora_id,
        updated_date=updated,
        change_type="UPDATE",
        fields={"Name": NUMBER, "Version": str(number), "Status": status, "TermType": "TERMED"},
        notification_id=f"n-{zuora_id}-{status}-{updated.timestamp()}",
        received_at=updated + timedelta(seconds=1),
    )


def zuora_version(zuora_id: str, number: int, *, status: str, at: timedelta) -> dict[str, Any]:
    """The same version as ZOQL returns it."""
    return {
        "Id": zuora_id,
        "UpdatedDate": (T0 + at).isoformat(),
        "Name": NUMBER,
        "Version": number,
        "Status": status,
        "TermType": "TERMED",
    }


class Org:
    """The sync function's service on moto's state table and the Salesforce stand-in, per-version mapping."""

    def __init__(self, dynamodb: Any, standin: StandinClient, mapping: MappingConfig = MAPPING) -> None:
        standin.reset()
        self.standin = standin
        self.state = DynamoVersionStore(STATE_TABLE, client=dynamodb)
        credentials = SalesforceCredentials.model_validate(
            {"login_url": standin.url, "client_id": standin.client_id, "client_secret": standin.client_secret}
        )
        self.salesforce = SimpleSalesforceAdapter(lambda: credentials, session=standin.session(), timeout_seconds=5.0)
        self.describe = SalesforceDescribeClient(lambda: credentials, session=standin.session(), max_attempts=2)
        self.dynamodb = dynamodb
        self.use(mapping)

    def use(self, mapping: MappingConfig) -> None:
        """The sync function's service with ``mapping`` (a deployment of a mapping override): the same org and state."""
        self.service = SyncService(
            settings(RETRY_DELAY_SECONDS=0),
            mapping=mapping,
            salesforce=self.salesforce,
            state=self.state,
            history=DynamoHistoryWriter(HISTORY_TABLE, ttl_days=30, client=self.dynamodb),
            retries=FakeRetryScheduler(),
        )

    def run(self, *changes: QueuedChange) -> SyncResult:
        return self.service.run([message(c) for c in changes], deadline=time.monotonic() + 60)

    def subscriptions(self) -> dict[str, dict[str, Any]]:
        """The stand-in's subscription records by the version's Zuora Id."""
        return {str(r[VERSION_EXTERNAL_ID]): r for r in self.standin.records(SUBSCRIPTIONS)}

    def api_calls(self) -> int:
        return int(self.standin.stats()["api_calls"])


@pytest.fixture
def org(dynamodb: Any, salesforce_standin: StandinClient) -> Org:
    return Org(dynamodb, salesforce_standin)


def test_the_org_passes_nrtsync_checks_salesforce_side_with_the_option(org: Org) -> None:
    # The version's external ID is a unique External ID of the package's subscription: nothing blocks
    assert blocking(check_salesforce(MAPPING, org.describe)) is False


@pytest.mark.parametrize("expired_first", [False, True], ids=["expired-after-insert", "expired-before-insert"])
def test_an_amendment_ends_as_one_record_version_2s(org: Org, expired_first: bool) -> None:
    # Given version 1 in Salesforce
    org.run(version(V1, 1, status="Active", at=timedelta(0)))
    assert list(org.subscriptions()) == [V1]

    # When the amendment's callouts arrive: version 2's insert and version 1's Expired update, in either order
    insert = version(V2, 2, status="Active", at=timedelta(minutes=5))
    expired = version(V1, 1, status="Expired", at=timedelta(minutes=5, seconds=1))
    for change in [expired, insert] if expired_first else [insert, expired]:
        result = org.run(change)
        assert [o.outcome.value for o in result.outcomes] == ["written"]

    # Then Salesforce holds one record for the subscription: version 2's, upserted on its own Id
    [record] = org.subscriptions().values()
    assert (record[VERSION_EXTERNAL_ID], record["Zuora__Zuora_Id__c"], record["Name"]) == (V2, V2, NUMBER)
    assert (record["Zuora__Status__c"], record["Zuora__Version__c"]) == ("Active", 2)

    # And version 1's late Active callout costs no call and does not bring its record back
    calls = org.api_calls()
    late = version(V1, 1, status="Active", at=timedelta(minutes=1)).model_copy(update={"received_at": NOW})
    assert [o.outcome.value for o in org.run(late).outcomes] == ["stale"]
    assert (list(org.subscriptions()), org.api_calls()) == ([V2], calls)


def test_after_a_switch_to_a_record_per_version_the_subscriptions_record_is_its_current_versions(
    dynamodb: Any, salesforce_standin: StandinClient
) -> None:
    # Given version 2 written with the default mapping: one record, upserted on the subscription number
    org = Org(dynamodb, salesforce_standin, load_mapping())
    org.run(version(V2, 2, status="Active", at=timedelta(minutes=5)))
    [record] = salesforce_standin.records(SUBSCRIPTIONS)

    # When the mapping is switched and version 2 changes again
    org.use(MAPPING)
    renewed = org.run(version(V2, 2, status="Active", at=timedelta(minutes=30)))
    assert [o.outcome.value for o in renewed.outcomes] == ["written"]

    # Then the per-version upsert found the subscription's record by the version's Id: still one record
    [same] = salesforce_standin.records(SUBSCRIPTIONS)
    assert same["Id"] == record["Id"]
    assert (same[VERSION_EXTERNAL_ID], same["Zuora__SubscriptionNumber__c"]) == (V2, NUMBER)


def test_a_lost_expired_callout_is_repaired_by_the_daily_reconcile_run(
    org: Org, dynamodb: Any, zuora_standin: ZuoraStandinClient
) -> None:
    # Given both versions written to Salesforce, and in Zuora version 1 Expired: its Expired callout was lost
    org.run(version(V1, 1, status="Active", at=timedelta(0)))
    org.run(version(V2, 2, status="Active", at=timedelta(minutes=5)))
    zuora_standin.reset()
    zuora_standin.seed(
        "Subscription",
        [
            zuora_version(V1, 1, status="Expired", at=timedelta(minutes=5, seconds=1)),
            zuora_version(V2, 2, status="Active", at=timedelta(minutes=5)),
        ],
    )
    sink = MemorySink()
    reconciler = reconcile(zuora_standin, org.state, sink)

    # When the usual reconcile run goes: it reads current versions only, and version 2 is in step
    usual = reconciler.run(deadline=time.monotonic() + RUN_SECONDS)
    assert (usual.as_dict()["read"], usual.as_dict()["queued"], usual.deletes, sink.sent) == (1, 0, None, [])

    # And the daily run with the lost-deletes sweep
    daily = reconciler.run(deadline=time.monotonic() + RUN_SECONDS, deletes=True)
    assert daily.deletes_queued == 1

    # Then it queued version 1's delete, and synced, Salesforce holds version 2's record only
    [delete] = sink.sent
    assert (delete.record_id, delete.is_delete) == (V1, True)
    assert [o.outcome.value for o in org.run(delete).outcomes] == ["written"]
    assert list(org.subscriptions()) == [V2]

    # And the next daily run, the org in step, queues nothing: no Salesforce call
    sink.sent.clear()
    again = reconciler.run(deadline=time.monotonic() + RUN_SECONDS, deletes=True)
    assert (again.deletes_queued, sink.sent) == (0, [])


def reconcile(zuora_standin: ZuoraStandinClient, state: DynamoVersionStore, sink: MemorySink) -> Reconciler:
    zuora = ZuoraClient(
        ZuoraCredentials.model_validate(
            {
                "base_url": zuora_standin.url,
                "client_id": zuora_standin.client_id,
                "client_secret": zuora_standin.client_secret,
            }
        ),
        session=zuora_standin.session(),
    )
    checkpoints = MemoryCheckpoints()
    sweep = Sweep(
        RECONCILE_SWEEP,
        zuora=zuora,
        mapping=MAPPING,
        versions=state,
        sink=sink,
        checkpoints=checkpoints,
        source="reconcile",
        clock=lambda: NOW,
    )
    return Reconciler(
        sweep=sweep,
        checkpoints=checkpoints,
        breaker=MemoryBreakerStore(),
        mapping=MAPPING,
        windows=ReconcileWindows(overlap=timedelta(0), settle=timedelta(0), lookback=timedelta(days=1)),
        lost_deletes=LostDeletes(zuora=zuora, written=state, sink=sink, mapping=MAPPING, clock=lambda: NOW),
        clock=lambda: NOW,
    )
