"""A sweep of Zuora's records: paging, queueing only what Salesforce lacks, checkpoints, resuming, bad records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.zoql import RECONCILE_SOURCE, change_source
from nrtsync.ports.queue import QueueUnavailableError
from nrtsync.services.sweep.service import Sweep, is_newer_than_settled
from nrtsync_fakes.queue import MemorySink
from nrtsync_fakes.state import MemoryVersions
from nrtsync_fakes.sweep import MemoryCheckpoints
from nrtsync_fakes.zuora import MemoryZuora, zuora_account

MAPPING = load_mapping()
SINCE = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
FAR = 1e12  # a deadline that never comes


class World:
    def __init__(self, *, page_size: int = 2000, source: str = "reconcile") -> None:
        self.zuora = MemoryZuora(page_size=page_size)
        self.sink = MemorySink()
        self.versions = MemoryVersions()
        self.checkpoints = MemoryCheckpoints()
        self.clock_now = NOW
        self.monotonic_now = 0.0
        self.sweep = Sweep(
            "reconcile",
            zuora=self.zuora,
            mapping=MAPPING,
            versions=self.versions,
            sink=self.sink,
            checkpoints=self.checkpoints,
            source=source,
            clock=lambda: self.clock_now,
            monotonic=lambda: self.monotonic_now,
        )

    def accounts(self, n: int, *, updated: datetime = SINCE + timedelta(hours=1)) -> list[str]:
        ids = [f"A{i:06d}" for i in range(n)]
        self.zuora.put("Account", *(zuora_account(i, updated) for i in ids))
        return ids

    def mark_written(self, record_ids: list[str], updated: datetime) -> None:
        for record_id in record_ids:
            change = QueuedChange(
                object_type="Account",
                record_id=record_id,
                updated_date=updated,
                notification_id=f"n-{record_id}",
                received_at=updated + timedelta(seconds=3),
            )
            self.versions.versions[change.record_key] = change.version


def test_a_window_is_read_page_by_page_and_every_record_salesforce_lacks_is_queued_once() -> None:
    world = World(page_size=2000)
    ids = world.accounts(5000)

    outcome = world.sweep.run("Account", SINCE, UNTIL, deadline=FAR)

    assert outcome.finished
    assert outcome.stopped_by is None
    assert (outcome.pages, outcome.read, outcome.queued) == (3, 5000, 5000)
    assert sorted(c.record_id for c in world.sink.sent) == ids
    assert world.zuora.query_more_calls == 2
    assert world.checkpoints.watermark("reconcile", "Account") == UNTIL
    assert world.checkpoints.load("reconcile", "Account") is None  # the cursor goes with the finished window


def test_a_sweep_over_records_already_written_queues_nothing() -> None:
    world = World()
    updated = SINCE + timedelta(hours=2)
    ids = world.accounts(300, updated=updated)
    world.mark_written(ids, updated)  # the callouts arrived and were written, at the same UpdatedDate

    outcome = world.sweep.run("Account", SINCE, UNTIL, deadline=FAR)

    assert outcome.finished
    assert outcome.read == 300
    assert world.sink.sent == []
    assert world.sink.calls == 0


def test_only_the_records_newer_than_their_written_version_are_queued() -> None:
    world = World()
    old = SINCE + timedelta(hours=1)
    new = SINCE + timedelta(hours=3)
    ids = world.accounts(10, updated=old)
    world.mark_written(ids, old)
    world.zuora.put("Account", zuora_account(ids[3], new), zuora_account(ids[7], new))  # callouts for these lost
    world.mark_written([ids[5]], new)  # Salesforce already has a newer version than Zuora returns (a late read)

    world.sweep.run("Account", SINCE, UNTIL, deadline=FAR)

    assert sorted(c.record_id for c in world.sink.sent) == [ids[3], ids[7]]
    assert all(c.updated_date == new for c in world.sink.sent)


def test_a_written_version_compares_by_updated_date_only() -> None:
    change = QueuedChange(
        object_type="Account", record_id="A1", updated_date=SINCE, notification_id="x", received_at=NOW
    )
    earlier_receive = change.model_copy(update={"received_at": SINCE}).version
    assert not is_newer_than_settled(change, earlier_receive)  # same UpdatedDate: in step, whenever received
    older = change.model_copy(update={"updated_date": SINCE - timedelta(milliseconds=1)})
    assert is_newer_than_settled(change, older.version)
    assert is_newer_than_settled(change, None)
    delete = change.model_copy(update={"change_type": "DELETE", "fields": {}})
    assert not is_newer_than_settled(change, delete.version)  # a tombstone at the same UpdatedDate keeps it deleted


def test_queued_changes_are_the_canonical_changes_marked_with_their_source() -> None:
    world = World(source="backfill")
    world.zuora.put("Account", zuora_account("A1", SINCE + timedelta(minutes=5), Balance="12.50"))

    world.sweep.run("Account", SINCE, UNTIL, deadline=FAR)

    (change,) = world.sink.sent
    assert change.fields["Balance"] == "12.50"
    assert change.fields["Status"] is None
    assert change.received_at == NOW
    assert change_source(change) == "backfill"
    assert change_source(change) != RECONCILE_SOURCE
    assert change.notification_id.startswith("backfill:Account:A1:")


def test_a_deadline_stops_before_the_next_page_and_the_next_run_resumes_at_that_page() -> None:
    world = World(page_size=1000)
    ids = world.accounts(3500)

    def advance_each_page() -> str | None:
        world.monotonic_now += 10
        return None

    # 60 s kept back for a page: with the deadline at t=75 no page starts after t=15; each page takes 10 s
    first = world.sweep.run("Account", SINCE, UNTIL, deadline=75, should_stop=advance_each_page)
    assert not first.finished
    assert first.stopped_by == "deadline"
    assert first.pages == 2
    saved = world.checkpoints.load("reconcile", "Account")
    assert saved is not None
    assert saved.pages == 2
    assert saved.query_locator is not None
    assert world.checkpoints.watermark("reconcile", "Account") is None  # not moved: the window is not read

    # The next run passes a later window: the saved cursor keeps its own, so no record of the first is missed
    second = world.sweep.run("Account", UNTIL, UNTIL + timedelta(hours=1), deadline=FAR)
    assert second.finished
    assert second.pages == 2
    assert second.cursor.pages == 4
    assert sorted(c.record_id for c in world.sink.sent) == ids  # each exactly once
    assert len(world.zuora.queries) == 1  # resumed by locator, not by a new query
    assert world.checkpoints.watermark("reconcile", "Account") == UNTIL


def test_a_stop_check_pauses_the_sweep_with_its_reason() -> None:
    world = World(page_size=100)
    world.accounts(250)
    pages_seen: list[int] = []

    def backlog() -> str | None:
        pages_seen.append(len(world.sink.sent))
        return "queue backlog" if len(world.sink.sent) >= 100 else None

    outcome = world.sweep.run("Account", SINCE, UNTIL, deadline=FAR, should_stop=backlog)

    assert (outcome.finished, outcome.stopped_by, outcome.queued) == (False, "queue backlog", 100)


def test_an_expired_locator_reads_the_window_again_and_loses_nothing() -> None:
    world = World(page_size=100)
    ids = world.accounts(250)
    stop_after_one = iter([None, "pause"])
    world.sweep.run("Account", SINCE, UNTIL, deadline=FAR, should_stop=lambda: next(stop_after_one))
    world.zuora.forget_locators()  # hours later, the saved locator has expired

    outcome = world.sweep.run("Account", SINCE, UNTIL, deadline=FAR)

    assert outcome.finished
    assert outcome.cursor.restarts == 0  # the restart read a page: the count of restarts in a row starts again
    assert {c.record_id for c in world.sink.sent} == set(ids)  # the first page is queued twice: the sync drops it
    assert len(world.zuora.queries) == 2


def test_long_pauses_between_runs_never_use_up_the_restarts() -> None:
    # Given a sweep that pauses after two pages in each of five runs, its locator expired before every next run
    # (more than 15 minutes between them: a backfill waiting for the queue, a reconcile on a slow schedule)
    world = World(page_size=100)
    ids = world.accounts(800)
    for _ in range(5):
        two_pages = iter([None, None, "pause"]).__next__
        paused = world.sweep.run("Account", SINCE, UNTIL, deadline=FAR, should_stop=two_pages)
        assert (paused.finished, paused.pages) == (False, 2)
        world.zuora.forget_locators()

    # When a run finally has the time to read the window to its end
    outcome = world.sweep.run("Account", SINCE, UNTIL, deadline=FAR)

    # Then it ends instead of failing on its fourth restart, every record queued
    assert outcome.finished
    assert {c.record_id for c in world.sink.sent} == set(ids)


def test_a_queue_failure_keeps_the_cursor_before_the_page_so_nothing_is_skipped() -> None:
    world = World(page_size=100)
    ids = world.accounts(300)
    world.sink.fail_after = 1  # the first page is queued, the second send fails

    with pytest.raises(QueueUnavailableError):
        world.sweep.run("Account", SINCE, UNTIL, deadline=FAR)
    saved = world.checkpoints.load("reconcile", "Account")
    assert saved is not None
    assert saved.pages == 1

    world.sink.fail_after = None
    outcome = world.sweep.run("Account", SINCE, UNTIL, deadline=FAR)
    assert outcome.finished
    assert sorted({c.record_id for c in world.sink.sent}) == ids


def test_a_record_that_cannot_become_a_change_is_reported_and_the_rest_are_queued() -> None:
    world = World()
    world.accounts(3)
    inside = SINCE + timedelta(hours=5)
    world.zuora.put(
        "Account",
        zuora_account("BAD1", inside, Name="\ufffe"),  # SQS could never carry it: the callout path refuses it too
        zuora_account("BAD2", inside, Name="x" * 40_000),  # longer than any value a change may carry
    )

    outcome = world.sweep.run("Account", SINCE, UNTIL, deadline=FAR)

    assert outcome.finished
    assert outcome.queued == 3
    assert sorted(m.record_id or "" for m in outcome.malformed) == ["BAD1", "BAD2"]
    assert outcome.cursor.malformed == 2


def test_a_source_other_than_a_sweep_is_refused() -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        World(source="callout")
