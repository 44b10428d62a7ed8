"""Deletes whose callout was lost: every written record Zuora no longer has is queued as a delete (in-memory fakes)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import record_key_of
from nrtsync.domain.versions import rekey
from nrtsync.services.reconcile.lost_deletes import LostDeletes
from nrtsync.services.reconcile.service import RECONCILE_SWEEP, Reconciler, ReconcileWindows
from nrtsync.services.sweep.service import Sweep
from nrtsync_fakes.breaker import MemoryBreakerStore
from nrtsync_fakes.queue import MemorySink
from nrtsync_fakes.state import InMemoryVersionStore
from nrtsync_fakes.sweep import MemoryCheckpoints
from nrtsync_fakes.zuora import MemoryZuora, zuora_account

MAPPING = load_mapping()
UPDATED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
FAR = 1e12


def written(store: InMemoryVersionStore, object_type: str, record_id: str, *, salesforce_id: str | None) -> None:
    """The state the sync leaves after writing the record (salesforce_id None: written by no one we know)."""
    key = record_key_of(object_type, record_id)
    claim = store.claim(key, "00000000000000001.1", "h", owner="s", lease_until_ms=2**62)
    assert claim.status.value == "claimed"
    store.commit(key, "00000000000000001.1", "h", owner="s", salesforce_id=salesforce_id)


def sweep(zuora: MemoryZuora, store: InMemoryVersionStore, sink: MemorySink, *, page_size: int = 2000) -> LostDeletes:
    zuora.page_size = page_size
    return LostDeletes(zuora=zuora, written=store, sink=sink, mapping=MAPPING, clock=lambda: NOW)


def test_a_written_record_zuora_no_longer_has_is_queued_as_a_delete_and_nothing_else() -> None:
    # Given three accounts written to Salesforce; Zuora still has two (the third's delete callout was lost)
    zuora, store, sink = MemoryZuora(), InMemoryVersionStore(), MemorySink()
    zuora.put("Account", zuora_account("A1", UPDATED), zuora_account("A2", UPDATED))
    for record_id in ("A1", "A2", "A3"):
        written(store, "Account", record_id, salesforce_id=f"a0B00000000000{record_id}")
    # And a record the state knows without a Salesforce Id (never in Salesforce through us)
    written(store, "Account", "A9", salesforce_id=None)

    # When the lost-deletes sweep runs, its Ids read over several pages
    reports = sweep(zuora, store, sink, page_size=1).run(deadline=FAR)

    # Then only A3 is queued, as a delete through the sync path, marked as read by reconciliation
    [delete] = sink.sent
    assert (delete.object_type, delete.record_id, delete.change_type) == ("Account", "A3", "DELETE")
    assert delete.notification_id.startswith("reconcile:")
    assert delete.updated_date == NOW
    account = next(r for r in reports if r.object_type == "Account")
    assert (account.written, account.in_zuora, account.queued, account.finished) == (3, 2, 1, True)


def test_a_deleted_subscription_is_found_by_its_number_and_queued_so() -> None:
    zuora, store, sink = MemoryZuora(), InMemoryVersionStore(), MemorySink()
    # The current version of A-S1 is in Zuora (its earlier version Expired); A-S2 is gone
    zuora.put(
        "Subscription",
        {"Id": "v1", "UpdatedDate": UPDATED.isoformat(), "Name": "A-S1", "Status": "Expired"},
        {"Id": "v2", "UpdatedDate": UPDATED.isoformat(), "Name": "A-S1", "Status": "Active"},
    )
    written(store, "Subscription", "A-S1", salesforce_id="a0C000000000001AAA")
    written(store, "Subscription", "A-S2", salesforce_id="a0C000000000002AAA")

    sweep(zuora, store, sink).run(deadline=FAR)

    [delete] = sink.sent
    assert rekey(MAPPING, delete).record_key == "Subscription#A-S2"
    assert delete.is_delete


def test_out_of_time_before_the_ids_are_all_read_deletes_nothing() -> None:
    zuora, store, sink = MemoryZuora(), InMemoryVersionStore(), MemorySink()
    zuora.put("Account", zuora_account("A1", UPDATED), zuora_account("A2", UPDATED))
    written(store, "Account", "A3", salesforce_id="a0B00000000000A3")
    clock = iter([0.0, 0.0, 0.0, 0.0, 99.0, 99.0, 99.0, 99.0, 99.0])

    lost = LostDeletes(zuora=zuora, written=store, sink=sink, mapping=MAPPING, monotonic=lambda: next(clock, 99.0))
    zuora.page_size = 1
    lost.run(deadline=50.0)

    assert sink.sent == []


def test_a_reconcile_run_includes_the_sweep_only_when_asked() -> None:
    # Given an org in step except for one account deleted in Zuora whose delete callout was lost
    zuora, store, sink = MemoryZuora(), InMemoryVersionStore(), MemorySink()
    zuora.put("Account", zuora_account("A1", UPDATED))
    written(store, "Account", "A1", salesforce_id="a0B00000000000A1")
    written(store, "Account", "A2", salesforce_id="a0B00000000000A2")
    checkpoints = MemoryCheckpoints()
    reconcile_sweep = Sweep(
        RECONCILE_SWEEP,
        zuora=zuora,
        mapping=MAPPING,
        versions=store,
        sink=sink,
        checkpoints=checkpoints,
        source="reconcile",
        clock=lambda: NOW,
    )
    reconciler = Reconciler(
        sweep=reconcile_sweep,
        checkpoints=checkpoints,
        breaker=MemoryBreakerStore(),
        mapping=MAPPING,
        windows=ReconcileWindows(overlap=timedelta(0), settle=timedelta(0), lookback=timedelta(days=2)),
        lost_deletes=LostDeletes(zuora=zuora, written=store, sink=sink, mapping=MAPPING, clock=lambda: NOW),
        clock=lambda: NOW,
    )

    # When a usual run goes, then one with the lost-deletes sweep
    usual = reconciler.run(deadline=time.monotonic() + 900)
    queued_by_usual = [c.record_id for c in sink.sent if c.is_delete]
    daily = reconciler.run(deadline=time.monotonic() + 900, deletes=True)

    # Then only the second queued the delete of A2
    assert (usual.deletes, queued_by_usual) == (None, [])
    assert daily.deletes_queued == 1
    assert [(c.record_id, c.change_type) for c in sink.sent if c.is_delete] == [("A2", "DELETE")]
    assert daily.as_dict()["deletes_queued"] == 1


def test_the_sweep_runs_in_the_first_quarter_hour_of_its_hour_only() -> None:
    zuora, store, sink = MemoryZuora(), InMemoryVersionStore(), MemorySink()
    lost = LostDeletes(zuora=zuora, written=store, sink=sink, mapping=MAPPING)
    checkpoints = MemoryCheckpoints()
    reconcile_sweep = Sweep(
        RECONCILE_SWEEP,
        zuora=zuora,
        mapping=MAPPING,
        versions=store,
        sink=sink,
        checkpoints=checkpoints,
        source="reconcile",
    )

    def reconciler(hour: int) -> Reconciler:
        windows = ReconcileWindows(overlap=timedelta(0), settle=timedelta(0), lookback=timedelta(days=1))
        return Reconciler(
            sweep=reconcile_sweep,
            checkpoints=checkpoints,
            breaker=MemoryBreakerStore(),
            mapping=MAPPING,
            windows=windows,
            lost_deletes=lost,
            deletes_hour=hour,
        )

    at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert reconciler(3).includes_deletes(at)
    assert reconciler(3).includes_deletes(at + timedelta(minutes=14))
    assert not reconciler(3).includes_deletes(at + timedelta(minutes=15))
    assert not reconciler(4).includes_deletes(at)
    assert not reconciler(-1).includes_deletes(at)
