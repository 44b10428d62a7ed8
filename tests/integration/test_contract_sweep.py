"""One contract, two implementations: the in-memory sweep checkpoints and DynamoSweepCheckpoints on moto."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints
from nrtsync.ports.sweep import SweepCursor
from nrtsync_fakes.sweep import MemoryCheckpoints
from tests.support.sync_world import STATE_TABLE

SINCE = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["fake", "moto"])
def checkpoints(request: pytest.FixtureRequest) -> MemoryCheckpoints | DynamoSweepCheckpoints:
    if request.param == "fake":
        return MemoryCheckpoints()
    dynamodb: Any = request.getfixturevalue("dynamodb")
    return DynamoSweepCheckpoints(STATE_TABLE, client=dynamodb)


def test_a_saved_cursor_is_loaded_whole_per_sweep_and_object(checkpoints) -> None:
    # Given nothing saved
    assert checkpoints.load("reconcile", "Account") is None
    cursor = SweepCursor("Account", SINCE, UNTIL, query_locator="loc-2", pages=2, read=4000, queued=3, malformed=1)

    # When a cursor is saved, then saved again further on
    checkpoints.save("reconcile", cursor)
    further = SweepCursor("Account", SINCE, UNTIL, query_locator="loc-3", pages=3, read=6000, queued=5, restarts=1)
    checkpoints.save("reconcile", further)

    # Then the last one is loaded, and only for its own sweep and object
    assert checkpoints.load("reconcile", "Account") == further
    assert checkpoints.load("backfill-r1", "Account") is None
    assert checkpoints.load("reconcile", "Invoice") is None


def test_finishing_a_window_drops_its_cursor_and_moves_the_watermark_to_its_end(checkpoints) -> None:
    # Given a cursor part way through a window
    cursor = SweepCursor("Account", SINCE, UNTIL, query_locator="loc-2", pages=2)
    checkpoints.save("reconcile", cursor)
    assert checkpoints.watermark("reconcile", "Account") is None

    # When the window is finished
    checkpoints.finish("reconcile", cursor)

    # Then the next sweep starts after it
    assert checkpoints.load("reconcile", "Account") is None
    assert checkpoints.watermark("reconcile", "Account") == UNTIL
    assert checkpoints.watermark("reconcile", "Invoice") is None
