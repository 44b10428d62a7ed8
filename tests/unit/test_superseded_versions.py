"""Subscription versions with ``versions.superseded`` ``delete`` (Zuora 360's default sync): a Salesforce record per
version, upserted on the version's Zuora Id, and the superseded version's record deleted (in-memory fakes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from nrtsync.domain.mapping import MappingConfig, MappingError, build_record, load_mapping
from nrtsync.domain.models.callout import QueuedChange, record_key_of
from nrtsync.domain.versions import rekey
from nrtsync.domain.zoql import change_from_record, changes_query, ids_query
from nrtsync.services.reconcile.lost_deletes import LostDeletes
from nrtsync.services.sync.service import SyncResult, SyncService
from nrtsync_fakes.clock import FakeClock
from nrtsync_fakes.history import in_memory_history
from nrtsync_fakes.queue import FakeRetryScheduler, MemorySink
from nrtsync_fakes.salesforce import FakeSalesforce
from nrtsync_fakes.state import InMemoryVersionStore
from nrtsync_fakes.zuora import MemoryZuora
from tests.support.mappings import per_version_subscriptions, per_version_subscriptions_json, write_mapping
from tests.support.sync_world import T0, message, settings

SUBSCRIPTIONS = "Zuora__Subscription__c"
NUMBER = "A-S00000001"
V1, V2 = "8ad0887e-v1", "8ad0887e-v2"
PER_VERSION = per_version_subscriptions()


def version(
    zuora_id: str, number: int, *, status: str, at: timedelta, received: timedelta | None = None
) -> QueuedChange:
    """A subscription version's callout: its own Id, the subscription number as Name, its Version and Status."""
    updated = T0 + at
    received_at = T0 + (received if received is not None else at + timedelta(seconds=1))
    return QueuedChange(
        object_type="Subscription",
        record_id=zuora_id,
        updated_date=updated,
        change_type="UPDATE",
        fields={"Name": NUMBER, "Version": str(number), "Status": status, "AutoRenew": str(number == 1).lower()},
        notification_id=f"n-{zuora_id}-{status}-{updated.timestamp()}-{received_at.timestamp()}",
        received_at=received_at,
    )


V1_ACTIVE = version(V1, 1, status="Active", at=timedelta(0))
V2_ACTIVE = version(V2, 2, status="Active", at=timedelta(minutes=5))
V1_EXPIRED = version(V1, 1, status="Expired", at=timedelta(minutes=5, seconds=1))


@dataclass
class Org:
    """The sync on the in-memory fakes, with the per-version mapping unless a test gives another."""

    mapping: MappingConfig = PER_VERSION
    salesforce: FakeSalesforce = field(default_factory=FakeSalesforce)
    state: InMemoryVersionStore = field(default_factory=InMemoryVersionStore)
    clock: FakeClock = field(default_factory=lambda: FakeClock(now=T0 + timedelta(hours=1)))

    def run(self, *changes: QueuedChange) -> SyncResult:
        service = SyncService(
            settings(RETRY_DELAY_SECONDS=0),
            mapping=self.mapping,
            salesforce=self.salesforce,
            state=self.state,
            history=in_memory_history()[0],
            retries=FakeRetryScheduler(),
            clock=self.clock.clock,
            monotonic=self.clock.monotonic,
        )
        return service.run([message(c) for c in changes], deadline=self.clock.monotonic() + 60)

    def subscriptions(self) -> dict[str, dict[str, Any]]:
        """Salesforce's subscription records by the upsert's external ID."""
        return self.salesforce.records.get(SUBSCRIPTIONS, {})


def zuora_version(zuora_id: str, number: int, status: str) -> dict[str, Any]:
    """A subscription version as ZOQL returns it."""
    return {
        "Id": zuora_id,
        "UpdatedDate": "2026-11-30T09:00:00-08:00",
        "Name": NUMBER,
        "Version": number,
        "Status": status,
    }


def sweep(zuora: MemoryZuora, org: Org, sink: MemorySink) -> LostDeletes:
    return LostDeletes(zuora=zuora, written=org.state, sink=sink, mapping=PER_VERSION, clock=org.clock.clock)


def outcomes(result: SyncResult) -> list[tuple[str, str]]:
    return sorted((o.change.record_id, o.outcome.value) for o in result.outcomes)


# -- the sync, in the orders Zuora's callouts can arrive ------------------------------------------------------


def test_the_expired_callout_after_version_2s_insert_leaves_version_2s_record_alone() -> None:
    # Given version 1 in Salesforce, then the amendment's insert of version 2: two records for a moment
    org = Org()
    org.run(V1_ACTIVE)
    org.run(V2_ACTIVE)
    assert set(org.subscriptions()) == {V1, V2}
    v1_salesforce_id = org.subscriptions()[V1]["Id"]

    # When version 1's Expired update arrives
    result = org.run(V1_EXPIRED)

    # Then it deleted version 1's record by the Id the state kept, and version 2's is the one left
    assert outcomes(result) == [(V1, "written")]
    assert result.outcomes[0].change.is_delete
    assert list(org.subscriptions()) == [V2]
    assert org.subscriptions()[V2]["Zuora__Zuora_Id__c"] == V2
    assert org.salesforce.deletes == [(SUBSCRIPTIONS, 1)]
    assert org.salesforce.lookups == []
    assert org.state.salesforce_ids([record_key_of("Subscription", V1)]) == {"Subscription#" + V1: v1_salesforce_id}


def test_the_expired_callout_before_version_2s_insert_ends_the_same() -> None:
    org = Org()
    org.run(V1_ACTIVE)

    expired = org.run(V1_EXPIRED)
    assert org.subscriptions() == {}
    inserted = org.run(V2_ACTIVE)

    assert (outcomes(expired), outcomes(inserted)) == ([(V1, "written")], [(V2, "written")])
    assert list(org.subscriptions()) == [V2]


def test_the_amendment_in_one_batch_is_one_call_that_deletes_and_inserts() -> None:
    org = Org()
    org.run(V1_ACTIVE)
    calls_before = org.salesforce.api_calls

    result = org.run(V2_ACTIVE, V1_EXPIRED)

    assert outcomes(result) == [(V1, "written"), (V2, "written")]
    assert org.salesforce.api_calls - calls_before == 1
    assert list(org.subscriptions()) == [V2]


def test_a_late_active_callout_of_version_1_after_its_delete_is_stale() -> None:
    # Given version 1's record deleted by its Expired update
    org = Org()
    org.run(V1_ACTIVE)
    org.run(V2_ACTIVE, V1_EXPIRED)
    calls_before = org.salesforce.api_calls

    # When Zuora retries version 1's earlier Active callout an hour later
    late = version(V1, 1, status="Active", at=timedelta(minutes=2), received=timedelta(hours=1))
    result = org.run(late)

    # Then the tombstone keeps it out: no call, the record does not come back
    assert outcomes(result) == [(V1, "stale")]
    assert org.salesforce.api_calls == calls_before
    assert list(org.subscriptions()) == [V2]


def test_an_expired_version_this_product_never_wrote_is_never_written_later() -> None:
    # Given version 1's Expired update arriving first (its insert callout still on its way)
    org = Org()
    expired = org.run(V1_EXPIRED)

    # Then no record was written or deleted (one look-up by external ID found none, as for any delete)
    assert outcomes(expired) == [(V1, "written")]
    assert org.salesforce.lookups == [(SUBSCRIPTIONS, V1)]
    assert org.salesforce.deletes == []
    assert org.salesforce.calls == []

    # And version 1's insert, arriving last, is stale
    assert outcomes(org.run(V1_ACTIVE)) == [(V1, "stale")]
    assert org.subscriptions() == {}


def test_the_default_keeps_one_record_whatever_the_expired_callout_says() -> None:
    # The same callouts with the shipped mapping: one record, named by the subscription number
    org = Org(mapping=load_mapping())
    org.run(V1_ACTIVE)
    org.run(V2_ACTIVE)
    org.run(V1_EXPIRED)

    assert list(org.subscriptions()) == [NUMBER]
    assert org.subscriptions()[NUMBER]["Zuora__Zuora_Id__c"] == V2
    assert org.salesforce.deletes == []


# -- the change and its record --------------------------------------------------------------------------------


def test_a_current_version_keeps_its_own_id_and_goes_out_under_it() -> None:
    change = rekey(PER_VERSION, V2_ACTIVE)

    assert (change.record_key, change.rank, change.is_delete) == ("Subscription#" + V2, None, False)
    record = build_record(PER_VERSION, "Subscription", change.record_id, dict(change.fields))
    assert (record["Zuora__External_Id__c"], record["Zuora__Zuora_Id__c"], record["Name"]) == (V2, V2, NUMBER)
    assert "Zuora__SubscriptionNumber__c" not in record


def test_a_version_no_longer_current_is_its_records_delete() -> None:
    change = rekey(PER_VERSION, V1_EXPIRED)

    assert (change.record_key, change.is_delete) == ("Subscription#" + V1, True)
    assert change.notification_id == V1_EXPIRED.notification_id
    assert rekey(PER_VERSION, change) == change


def test_a_version_without_the_status_cannot_be_told_current_and_is_a_mapping_error() -> None:
    without = V1_EXPIRED.model_copy(update={"fields": {"Name": NUMBER, "Version": "1"}})

    with pytest.raises(MappingError, match="no Status"):
        rekey(PER_VERSION, without)


def test_reconciliation_and_the_backfill_read_current_versions_by_their_own_ids() -> None:
    record = zuora_version(V2, 2, "Active")

    queued = change_from_record(PER_VERSION, "Subscription", record, received_at=T0)

    assert (queued.record_key, queued.is_delete) == ("Subscription#" + V2, False)
    assert changes_query(PER_VERSION, "Subscription", T0).endswith("and Status != 'Expired'")
    assert ids_query(PER_VERSION, "Subscription").startswith("select Id, Name from Subscription where")
    assert ids_query(PER_VERSION, "Subscription").endswith("and Status != 'Expired'")


# -- the lost-deletes sweep -----------------------------------------------------------------------------------


def test_a_lost_expired_callout_is_found_by_the_lost_deletes_sweep_as_a_delete() -> None:
    # Given both versions written to Salesforce, and version 1 Expired in Zuora (its callout lost)
    org = Org()
    org.run(V1_ACTIVE)
    org.run(V2_ACTIVE)
    zuora, sink = MemoryZuora(), MemorySink()
    zuora.put("Subscription", zuora_version(V1, 1, "Expired"), zuora_version(V2, 2, "Active"))

    # When the lost-deletes sweep runs
    sweep(zuora, org, sink).run(deadline=1e12)

    # Then version 1 is queued as its delete, by its own Id; synced, it leaves version 2's record alone
    [delete] = sink.sent
    assert (delete.record_key, delete.is_delete, delete.fields) == ("Subscription#" + V1, True, {})
    org.run(delete)
    assert list(org.subscriptions()) == [V2]


def test_an_org_in_step_gives_the_sweep_nothing_to_queue() -> None:
    # Given the amendment synced whole (version 1's record deleted, its tombstone kept)
    org = Org()
    org.run(V1_ACTIVE)
    org.run(V2_ACTIVE, V1_EXPIRED)
    zuora, sink = MemoryZuora(), MemorySink()
    zuora.put("Subscription", zuora_version(V1, 1, "Expired"), zuora_version(V2, 2, "Active"))

    reports = sweep(zuora, org, sink).run(deadline=1e12)

    assert sink.sent == []
    subscriptions = next(r for r in reports if r.object_type == "Subscription")
    assert (subscriptions.written, subscriptions.in_zuora, subscriptions.queued) == (1, 1, 0)


def test_after_a_switch_to_a_record_per_version_the_sweep_keeps_the_subscriptions_record() -> None:
    # Given the subscription written as one record (the default), then the mapping switched to a record per version
    org = Org(mapping=load_mapping())
    org.run(V1_ACTIVE)
    org.run(V2_ACTIVE)
    org.mapping = PER_VERSION
    zuora, sink = MemoryZuora(), MemorySink()
    zuora.put("Subscription", zuora_version(V1, 1, "Expired"), zuora_version(V2, 2, "Active"))

    # When the sweep runs while the subscription has a current version: its record (version 2's) is not deleted
    sweep(zuora, org, sink).run(deadline=1e12)
    assert sink.sent == []

    # And once Zuora has deleted the subscription, the record goes, as any record Zuora no longer has
    zuora.records["Subscription"].clear()
    sweep(zuora, org, sink).run(deadline=1e12)
    [delete] = sink.sent
    assert (delete.record_id, delete.is_delete) == (NUMBER, True)
    org.run(delete)
    assert org.subscriptions() == {}


def test_after_a_switch_back_to_one_record_the_sweep_deletes_the_records_per_version() -> None:
    # Given both versions written as records of their own, then the mapping switched back to the default
    org = Org()
    org.run(V1_ACTIVE)
    org.run(V2_ACTIVE)
    org.mapping = load_mapping()
    zuora, sink = MemoryZuora(), MemorySink()
    zuora.put("Subscription", zuora_version(V1, 1, "Expired"), zuora_version(V2, 2, "Active"))

    # When the sweep runs: no record is named by a subscription number Zuora has
    LostDeletes(zuora=zuora, written=org.state, sink=sink, mapping=org.mapping, clock=org.clock.clock).run(
        deadline=1e12
    )
    org.run(*sink.sent)

    # Then the records per version are gone, so the record per subscription can take the version's Id
    assert sorted(c.record_id for c in sink.sent) == [V1, V2]
    assert org.subscriptions() == {}


# -- the option in the mapping file ---------------------------------------------------------------------------


def test_the_option_loads_from_a_mapping_file(tmp_path: Path) -> None:
    mapping = load_mapping(write_mapping(per_version_subscriptions_json(), tmp_path))

    versions = mapping.objects["Subscription"].versions
    assert versions is not None
    assert versions.per_version
    default = load_mapping().objects["Subscription"].versions
    assert default is not None
    assert (default.superseded, default.per_version) == ("overwrite", False)


def test_an_unknown_value_is_refused_naming_the_field(tmp_path: Path) -> None:
    mapping = per_version_subscriptions_json()
    mapping["objects"]["Subscription"]["versions"]["superseded"] = "remove"

    with pytest.raises(MappingError, match=r"versions\.superseded[\s\S]*'overwrite' or 'delete'"):
        load_mapping(write_mapping(mapping, tmp_path))


def test_switching_only_superseded_is_refused_naming_the_external_id(tmp_path: Path) -> None:
    # The upsert would otherwise write each version's Id into Zuora__SubscriptionNumber__c
    mapping = per_version_subscriptions_json()
    mapping["objects"]["Subscription"]["externalIdField"] = "Zuora__SubscriptionNumber__c"

    with pytest.raises(MappingError, match=r'superseded is "delete".*externalIdField \(Zuora__SubscriptionNumber__c\)'):
        load_mapping(write_mapping(mapping, tmp_path))


def test_switching_only_the_external_id_is_refused_too(tmp_path: Path) -> None:
    mapping = per_version_subscriptions_json()
    del mapping["objects"]["Subscription"]["versions"]["superseded"]

    with pytest.raises(MappingError, match=r'superseded is "overwrite".*externalIdField \(Zuora__External_Id__c\)'):
        load_mapping(write_mapping(mapping, tmp_path))


def test_the_delete_mode_needs_the_status_in_the_callouts(tmp_path: Path) -> None:
    mapping = per_version_subscriptions_json()
    del mapping["objects"]["Subscription"]["fields"]["Status"]

    with pytest.raises(MappingError, match="must carry Status"):
        load_mapping(write_mapping(mapping, tmp_path))


@pytest.mark.parametrize(
    ("status", "current"), [("Active", True), ("Cancelled", True), ("Expired", False), ("", True), (None, True)]
)
def test_the_current_condition_reads_as_zoql_does(status: str | None, current: bool) -> None:
    versions = PER_VERSION.objects["Subscription"].versions
    assert versions is not None

    assert versions.is_current({"Status": status}) is current
