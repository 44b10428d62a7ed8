"""Changes held for a billing account's CRM link never wait for ever: a released change that must wait goes to the
callout queue, and what stays held goes out with the next change that names the account.

The sync service on the in-memory fakes: state, holds, queue, history and Salesforce."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.history import Failure, RecordOutcome, SessionSummary
from nrtsync.services.sync.service import QueueMessage, SyncResult, SyncService
from nrtsync_fakes.clock import FakeClock
from nrtsync_fakes.holds import MemoryHoldStore
from nrtsync_fakes.queue import FakeRetryScheduler, MemoryQueue
from nrtsync_fakes.salesforce import FakeSalesforce
from nrtsync_fakes.state import InMemoryVersionStore
from tests.support.sync_world import T0, change, message, settings

CRM_ID = "0015g00000XyZ12AAB"
INVOICES = "Zuora__ZInvoice__c"
ROW_LOCK = ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
VALIDATION = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Invoice number must not be I2")


@dataclass
class FailureList:
    """The history: sessions kept, failures parked unless ``refusing`` (the table throttled or down)."""

    refusing: bool = False
    parked: list[Failure] = field(default_factory=list)

    def write_session(self, session: SessionSummary, outcomes: Sequence[RecordOutcome]) -> None:
        return None

    def park_failures(self, failures: Sequence[Failure]) -> list[Failure]:
        if self.refusing:
            return list(failures)
        self.parked.extend(failures)
        return []


@dataclass
class World:
    """One sync service over fakes that outlive its sessions, as the tables and the queue outlive invocations."""

    salesforce: FakeSalesforce = field(default_factory=FakeSalesforce)
    state: InMemoryVersionStore = field(default_factory=InMemoryVersionStore)
    holds: MemoryHoldStore = field(default_factory=MemoryHoldStore)
    queue: MemoryQueue = field(default_factory=MemoryQueue)
    retries: FakeRetryScheduler = field(default_factory=FakeRetryScheduler)
    clock: FakeClock = field(default_factory=FakeClock)
    history: FailureList = field(default_factory=FailureList)

    def run(self, *messages: QueueMessage) -> SyncResult:
        service = SyncService(
            settings(RETRY_DELAY_SECONDS=7),
            mapping=load_mapping(),
            salesforce=self.salesforce,
            state=self.state,
            history=self.history,
            retries=self.retries,
            holds=self.holds,
            queue=self.queue,
            clock=self.clock,
            monotonic=self.clock.monotonic,
        )
        return service.run(list(messages), deadline=self.clock.monotonic() + 60)

    def deliver_queued(self) -> SyncResult:
        """SQS delivers what the sync sent to the queue (after its delay), as new messages."""
        sent, self.queue.sent = self.queue.sent, []
        self.queue.delayed.clear()
        return self.run(*(message(c) for c in sent))

    def held_records(self) -> set[str]:
        return {key for records in self.holds.held.values() for key in records}


def outcomes(result: SyncResult) -> list[str]:
    """Each change's record and outcome; the account's held change without its link comes back stale."""
    return sorted(f"{o.change.record_id} {o.outcome.value}" for o in result.outcomes)


def unlinked_account() -> QueuedChange:
    return change("Account", "A1", Name="Acme", CrmId="")


def linked_account(minutes: int = 5) -> QueuedChange:
    return change("Account", "A1", updated=T0 + timedelta(minutes=minutes), Name="Acme", CrmId=CRM_ID)


def invoice(record_id: str, minutes: int = 0) -> QueuedChange:
    return change(
        "Invoice", record_id, updated=T0 + timedelta(minutes=minutes), InvoiceNumber=record_id, AccountId="A1"
    )


@pytest.fixture
def world() -> World:
    # Given an account held for its missing CrmId, and two invoices held behind it
    world = World()
    world.run(message(unlinked_account()), message(invoice("I1")), message(invoice("I2")))
    assert world.held_records() == {"Account#A1", "Invoice#I1", "Invoice#I2"}
    return world


def test_a_released_change_that_meets_a_row_lock_is_queued_again_and_then_written(world: World) -> None:
    # When the account's CrmId arrives and one released invoice meets a row lock
    world.salesforce.refuse["I2"] = ROW_LOCK
    result = world.run(message(linked_account()))

    # Then that invoice waits on the callout queue, with its retry delay, and no longer in the hold
    assert outcomes(result) == ["A1 stale", "A1 written", "I1 written", "I2 waiting"]
    [(queued, delay)] = world.queue.delayed
    assert (queued.record_key, queued.fields["InvoiceNumber"]) == ("Invoice#I2", "I2")
    assert 1 <= delay <= 900
    assert world.held_records() == set()
    # And it is no queue message of this session: nothing is handed back by receipt handle
    assert result.retry_message_ids == []
    assert world.retries.delays == {}

    # When the lock is gone and SQS delivers the queued change (no further callout)
    del world.salesforce.refuse["I2"]
    later = world.deliver_queued()

    # Then it is written, with the account's link
    assert outcomes(later) == ["I2 written"]
    assert world.salesforce.records[INVOICES]["I2"]["Zuora__Account__c"] == CRM_ID


def test_a_released_change_the_queue_does_not_take_stays_held_and_the_next_change_of_the_account_releases_it(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # When the account's CrmId arrives, one released invoice meets a row lock, and the queue is down
    world.salesforce.refuse["I2"] = ROW_LOCK
    world.queue.failing = True
    result = world.run(message(linked_account()))

    # Then the invoice stays held, and a warning names it
    assert outcomes(result) == ["A1 stale", "A1 written", "I1 written", "I2 waiting"]
    assert world.held_records() == {"Invoice#I2"}
    assert "Invoice#I2" in caplog.text
    assert "stays held" in caplog.text

    # When the next change of one of the account's records arrives (a callout, or reconciliation's)
    world.queue.failing = False
    del world.salesforce.refuse["I2"]
    later = world.run(message(invoice("I3", minutes=10)))

    # Then it is not held behind the account, which has its link: it goes out, and the left-behind invoice with it
    assert outcomes(later) == ["I2 written", "I3 written"]
    assert set(world.salesforce.records[INVOICES]) == {"I1", "I2", "I3"}
    assert world.held_records() == set()


def test_held_changes_not_read_after_the_account_was_written_are_released_when_its_change_comes_back(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # When the account's CrmId arrives and the held changes cannot be read after it was written
    world.holds.failing_reads = 1
    result = world.run(message(linked_account()))

    # Then the account is written, its invoices still held, and its change is queued again; a warning names it
    assert outcomes(result) == ["A1 written"]
    assert world.held_records() == {"Account#A1", "Invoice#I1", "Invoice#I2"}
    assert [(c.record_key, d) for c, d in world.queue.delayed] == [("Account#A1", 7)]
    assert "Account#A1" in caplog.text

    # When SQS delivers it: a duplicate of what was written, whose held changes now go out
    later = world.deliver_queued()

    assert outcomes(later) == ["A1 duplicate", "A1 stale", "I1 written", "I2 written"]
    assert world.held_records() == set()


def test_a_duplicate_of_the_linked_account_releases_what_stayed_held(world: World) -> None:
    # Given the account written with its CrmId while the hold and the queue both failed it
    world.holds.failing_reads = 1
    world.queue.failing = True
    linked = linked_account()
    world.run(message(linked))
    assert world.held_records() == {"Account#A1", "Invoice#I1", "Invoice#I2"}

    # When Zuora delivers the account's callout again
    world.queue.failing = False
    again = world.run(message(linked))

    # Then the held invoices go out
    assert outcomes(again) == ["A1 duplicate", "A1 stale", "I1 written", "I2 written"]
    assert world.held_records() == set()


def test_a_child_of_an_account_still_without_its_link_stays_held(world: World) -> None:
    # The left-behind rule must not release an account that never had its link
    result = world.run(message(invoice("I3", minutes=10)))

    assert outcomes(result) == ["I3 held"]
    assert world.salesforce.api_calls == 0
    assert world.queue.sent == []


def test_a_released_change_that_fails_leaves_the_hold_once_it_is_on_the_failure_list(world: World) -> None:
    # When the account's CrmId arrives and Salesforce refuses one released invoice for good
    world.salesforce.refuse["I2"] = VALIDATION
    result = world.run(message(linked_account()))

    # Then it is parked with Salesforce's reason, and no longer held
    assert outcomes(result) == ["A1 stale", "A1 written", "I1 written", "I2 failed"]
    assert [(f.record_id, f.error_code) for f in world.history.parked] == [("I2", VALIDATION[0])]
    assert world.held_records() == set()
    assert world.queue.sent == []


def test_a_released_change_the_failure_list_does_not_take_goes_to_the_queue_to_be_parked_later(world: World) -> None:
    # When the account's CrmId arrives, Salesforce refuses one released invoice for good, and the failure list is down
    world.salesforce.refuse["I2"] = VALIDATION
    world.history.refusing = True
    result = world.run(message(linked_account()))

    # Then the invoice is neither lost nor handed back by a receipt handle it never had: it is on the callout queue
    assert world.history.parked == []
    assert [c.record_key for c, _ in world.queue.delayed] == ["Invoice#I2"]
    assert world.held_records() == set()
    assert result.retry_message_ids == []

    # And once the failure list is back, its delivery is parked
    world.history.refusing = False
    later = world.deliver_queued()
    assert outcomes(later) == ["I2 failed"]
    assert [f.record_id for f in world.history.parked] == ["I2"]
