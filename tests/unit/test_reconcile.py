"""Reconciliation over the sweep's in-memory fakes: its windows, the breaker, the deadline, an org in step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.models.zuora import ZuoraRequestError
from nrtsync.domain.zoql import RECONCILE_SOURCE, change_source
from nrtsync.ports.breaker import BreakerState
from nrtsync.ports.zuora import QueryPage
from nrtsync.services.reconcile.service import (
    BREAKER_OPEN,
    NOT_REACHED,
    RECONCILE_SWEEP,
    ReconcileError,
    Reconciler,
    ReconcileWindows,
)
from nrtsync.services.sweep.service import Sweep
from nrtsync_fakes.breaker import MemoryBreakerStore
from nrtsync_fakes.queue import MemorySink
from nrtsync_fakes.state import MemoryVersions
from nrtsync_fakes.sweep import MemoryCheckpoints
from nrtsync_fakes.zuora import MemoryZuora, zuora_account

MAPPING = load_mapping()
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WINDOWS = ReconcileWindows(overlap=timedelta(minutes=5), settle=timedelta(minutes=2), lookback=timedelta(hours=24))
LONG = 900.0  # seconds left in the invocation: more than any test needs


class SlowZuora(MemoryZuora):
    """Every query action takes ``seconds`` of the world's monotonic clock."""

    def __init__(self, world: World, seconds: float, page_size: int) -> None:
        super().__init__(page_size=page_size)
        self._world, self._seconds = world, seconds

    def query(self, zoql: str) -> QueryPage:
        self._world.monotonic_now += self._seconds
        return super().query(zoql)

    def query_more(self, query_locator: str) -> QueryPage:
        self._world.monotonic_now += self._seconds
        return super().query_more(query_locator)


class World:
    def __init__(self, *, zuora: MemoryZuora | None = None) -> None:
        self.zuora = zuora or MemoryZuora()
        self.sink = MemorySink()
        self.versions = MemoryVersions()
        self.checkpoints = MemoryCheckpoints()
        self.breaker = MemoryBreakerStore()
        self.now = NOW
        self.monotonic_now = 0.0

    def reconciler(self) -> Reconciler:
        sweep = Sweep(
            RECONCILE_SWEEP,
            zuora=self.zuora,
            mapping=MAPPING,
            versions=self.versions,
            sink=self.sink,
            checkpoints=self.checkpoints,
            source="reconcile",
            clock=lambda: self.now,
            monotonic=lambda: self.monotonic_now,
        )
        return Reconciler(
            sweep=sweep,
            checkpoints=self.checkpoints,
            breaker=self.breaker,
            mapping=MAPPING,
            windows=WINDOWS,
            clock=lambda: self.now,
        )

    def account(self, record_id: str, updated: datetime) -> None:
        self.zuora.put("Account", zuora_account(record_id, updated))

    def mark_written(self, record_id: str, updated: datetime) -> None:
        change = QueuedChange(
            object_type="Account",
            record_id=record_id,
            updated_date=updated,
            notification_id=f"callout-{record_id}",
            received_at=updated + timedelta(seconds=2),
        )
        self.versions.versions[change.record_key] = change.version

    def queued_ids(self) -> list[str]:
        return sorted(c.record_id for c in self.sink.sent)


def test_the_first_run_reads_the_lookback_up_to_the_settle_time_and_sets_the_watermark() -> None:
    # Given Zuora records just outside and inside the first window [now - 24 h, now - 2 min), none in Salesforce
    world = World()
    world.account("too-old", NOW - timedelta(hours=24, minutes=1))
    world.account("in-window", NOW - timedelta(hours=23))
    world.account("still-settling", NOW - timedelta(minutes=1))

    # When reconciliation runs for the first time
    result = world.reconciler().run(deadline=world.monotonic_now + LONG)

    # Then only the record inside the window is queued, marked as reconciliation's
    assert world.queued_ids() == ["in-window"]
    assert all(change_source(c) == RECONCILE_SOURCE for c in world.sink.sent)
    [account] = [o for o in result.objects if o.object_type == "Account"]
    assert (account.since, account.until) == (NOW - timedelta(hours=24), NOW - timedelta(minutes=2))
    assert account.finished
    assert account.queued == 1
    # and every mapped object, parents first, has its watermark at the window's end
    assert [o.object_type for o in result.objects] == MAPPING.write_order()
    assert all(o.finished for o in result.objects)
    assert world.checkpoints.watermark(RECONCILE_SWEEP, "Account") == NOW - timedelta(minutes=2)
    assert result.queued == 1
    assert result.watermark_lag_seconds() == 120


def test_the_next_run_starts_an_overlap_before_the_watermark() -> None:
    # Given a first run 15 minutes ago, whose window ended at its start minus the settle time
    world = World()
    world.now = NOW - timedelta(minutes=15)
    world.reconciler().run(deadline=world.monotonic_now + LONG)
    watermark = world.checkpoints.watermark(RECONCILE_SWEEP, "Account")
    assert watermark == NOW - timedelta(minutes=17)
    # and records that became visible in Zuora afterwards: one stamped inside the overlap, one before it
    world.account("in-overlap", watermark - timedelta(minutes=4))
    world.account("before-overlap", watermark - timedelta(minutes=6))
    world.account("new", NOW - timedelta(minutes=10))

    # When the next run comes
    world.now = NOW
    result = world.reconciler().run(deadline=world.monotonic_now + LONG)

    # Then its window is [watermark - overlap, now - settle): the late record in the overlap is recovered
    [account] = [o for o in result.objects if o.object_type == "Account"]
    assert (account.since, account.until) == (watermark - timedelta(minutes=5), NOW - timedelta(minutes=2))
    assert world.queued_ids() == ["in-overlap", "new"]


def test_a_sweep_over_an_org_in_step_queues_nothing() -> None:
    # Given records whose callouts arrived and were written at the same UpdatedDate
    world = World()
    for n in range(50):
        updated = NOW - timedelta(hours=1, minutes=n)
        world.account(f"A{n:03d}", updated)
        world.mark_written(f"A{n:03d}", updated)

    # When reconciliation reads them
    result = world.reconciler().run(deadline=world.monotonic_now + LONG)

    # Then nothing is sent to the queue (so the sync makes no Salesforce call), and the window is done
    assert world.sink.calls == 0
    assert (result.read, result.queued) == (50, 0)
    assert all(o.finished for o in result.objects)


def test_an_open_breaker_queues_nothing_and_keeps_the_watermark() -> None:
    # Given a previous run's watermark, lost callouts since, and Salesforce paused by the circuit breaker
    world = World()
    world.now = NOW - timedelta(minutes=15)
    world.reconciler().run(deadline=world.monotonic_now + LONG)
    watermark = world.checkpoints.watermark(RECONCILE_SWEEP, "Account")
    world.account("lost", NOW - timedelta(minutes=10))
    world.breaker.state = BreakerState(is_open=True)
    world.now = NOW
    queries_before = len(world.zuora.queries)

    # When the scheduled run comes
    result = world.reconciler().run(deadline=world.monotonic_now + LONG)

    # Then nothing is read or queued, no watermark moves, and the run says why
    assert world.sink.sent == []
    assert len(world.zuora.queries) == queries_before
    assert world.checkpoints.watermark(RECONCILE_SWEEP, "Account") == watermark
    assert result.objects[0].stopped_by == BREAKER_OPEN
    assert {o.stopped_by for o in result.objects[1:]} == {NOT_REACHED}

    # When the breaker closes, the next run covers the whole gap
    world.breaker.state = BreakerState(is_open=False)
    world.reconciler().run(deadline=world.monotonic_now + LONG)
    assert world.queued_ids() == ["lost"]


def test_a_run_out_of_time_mid_object_resumes_there_next_run_with_the_same_window() -> None:
    # Given 10 pages of Account records Salesforce lacks, and a Zuora page that takes 30 s to read
    world = World()
    world.zuora = SlowZuora(world, seconds=30, page_size=100)
    for n in range(1000):
        world.account(f"A{n:04d}", NOW - timedelta(hours=2, seconds=n))

    # When a run has 130 s (reserve: 5 s for the report, 60 s before the deadline for a page)
    first = world.reconciler().run(deadline=world.monotonic_now + 130)

    # Then it stops on the deadline after 3 pages, keeps no watermark, and leaves the other objects
    account = first.objects[0]
    assert account.object_type == "Account"
    assert (account.stopped_by, account.pages, account.queued) == ("deadline", 3, 300)
    assert not account.finished
    assert world.checkpoints.watermark(RECONCILE_SWEEP, "Account") is None
    assert {o.stopped_by for o in first.objects[1:]} == {NOT_REACHED}

    # When the next run comes 15 minutes later with time enough
    world.now = NOW + timedelta(minutes=15)
    world.monotonic_now = 0.0
    second = world.reconciler().run(deadline=world.monotonic_now + LONG)

    # Then it reads on from the saved cursor, in the first run's window, and queues each record once
    assert second.objects[0].pages == 7
    assert world.queued_ids() == sorted(f"A{n:04d}" for n in range(1000))
    assert world.checkpoints.watermark(RECONCILE_SWEEP, "Account") == NOW - timedelta(minutes=2)
    assert all(o.finished for o in second.objects)


def test_an_object_zuora_refuses_is_reported_the_others_run_and_the_run_fails_after() -> None:
    # Given Zuora refusing the query of one object (e.g. a mapped field the tenant lacks)
    class RefusingZuora(MemoryZuora):
        def query(self, zoql: str) -> QueryPage:
            if " from Account " in zoql:
                raise ZuoraRequestError("invalid field", code="INVALID_FIELD", http_status=400)
            return super().query(zoql)

    world = World(zuora=RefusingZuora())

    # When reconciliation runs
    result = world.reconciler().run(deadline=world.monotonic_now + LONG)

    # Then the other objects still finish, and the run raises after it was reported
    assert result.objects[0].error is not None
    assert result.objects[0].error.startswith("ZuoraRequestError")
    assert all(o.finished for o in result.objects[1:])
    with pytest.raises(ReconcileError, match="Account"):
        result.raise_for_errors()
