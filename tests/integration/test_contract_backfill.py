"""One contract, two implementations: the in-memory backfill store and DynamoBackfillStore on moto."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nrtsync.adapters.aws.backfill_store import DynamoBackfillStore
from nrtsync.ports.backfill import BackfillExistsError, BackfillRun, BackfillStatus, ObjectProgress
from nrtsync_fakes.backfill import MemoryBackfillStore
from tests.support.sync_world import STATE_TABLE

CREATED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["fake", "moto"])
def store(request: pytest.FixtureRequest) -> MemoryBackfillStore | DynamoBackfillStore:
    if request.param == "fake":
        return MemoryBackfillStore()
    dynamodb: Any = request.getfixturevalue("dynamodb")
    return DynamoBackfillStore(STATE_TABLE, client=dynamodb)


def a_run(run_id: str, created: datetime = CREATED) -> BackfillRun:
    return BackfillRun(
        run_id=run_id,
        objects=("Account", "Invoice"),
        since=datetime(2006, 1, 1, tzinfo=UTC),
        until=created,
        created_at=created,
        progress=(ObjectProgress("Account"), ObjectProgress("Invoice")),
    )


def test_a_run_is_created_once_saved_and_loaded_whole(store) -> None:
    # Given a run created
    run = a_run("r1")
    store.create(run)

    # When the same id is created again / Then it is refused
    with pytest.raises(BackfillExistsError):
        store.create(run)

    # And what is saved later is what loads
    progressed = run.with_progress(
        ObjectProgress("Account", pages=3, read=5000, queued=4990, malformed=1, started_at=CREATED, finished_at=CREATED)
    )
    saved = replace(progressed, status=BackfillStatus.WAITING, reason="backlog", steps=4, updated_at=CREATED)
    store.save(saved)
    assert store.load("r1") == saved
    assert store.load("nope") is None


def test_runs_are_listed_newest_first(store) -> None:
    # Given three runs created out of order
    for run_id, hours in (("old", 0), ("newest", 2), ("middle", 1)):
        store.create(a_run(run_id, CREATED + timedelta(hours=hours)))

    # When they are listed / Then the newest comes first
    assert [run.run_id for run in store.runs()] == ["newest", "middle", "old"]
