"""One contract, two implementations: the in-memory breaker store and DynamoBreakerStore on moto."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore
from nrtsync.ports.breaker import BreakerReason, BreakerState
from nrtsync_fakes.breaker import MemoryBreakerStore
from tests.support.sync_world import STATE_TABLE

AT = datetime(2026, 12, 1, 9, 0, 5, 250_000, tzinfo=UTC)


@pytest.fixture(params=["fake", "moto"])
def store(request: pytest.FixtureRequest) -> MemoryBreakerStore | DynamoBreakerStore:
    if request.param == "fake":
        return MemoryBreakerStore()
    dynamodb: Any = request.getfixturevalue("dynamodb")
    return DynamoBreakerStore(STATE_TABLE, client=dynamodb)


def test_a_breaker_never_written_is_closed_with_no_failures(store) -> None:
    assert store.read() == BreakerState(is_open=False)


def test_a_written_state_reads_back_with_its_times_to_the_second(store) -> None:
    # When an operator's pause is written
    store.write(
        BreakerState(
            is_open=True, reason=BreakerReason.MANUAL, message="release", since=AT, by="operator:ana", updated_at=AT
        )
    )

    # Then it reads back as written, times kept to the second
    assert store.read() == BreakerState(
        is_open=True,
        reason=BreakerReason.MANUAL,
        message="release",
        since=AT.replace(microsecond=0),
        by="operator:ana",
        updated_at=AT.replace(microsecond=0),
    )


def test_failures_count_up_across_calls_and_reset_to_zero(store) -> None:
    # When three failed calls are counted / Then each returns the new count, and the state carries it
    assert [store.count_failure(AT) for _ in range(3)] == [1, 2, 3]
    assert store.read() == BreakerState(is_open=False, failures=3)

    # And a reset brings it back to zero, twice in a row as well
    store.reset_failures()
    store.reset_failures()
    assert store.read().failures == 0


def test_writing_a_state_keeps_the_failures_it_carries(store) -> None:
    # Given two failures counted
    store.count_failure(AT)
    store.count_failure(AT)

    # When the sync opens the breaker with the count it read
    store.write(BreakerState(is_open=True, reason=BreakerReason.SALESFORCE_UNAVAILABLE, by="sync", failures=2))

    # Then the next failure counts on from there
    assert store.count_failure(AT) == 3


def test_a_conditional_write_lands_only_on_the_state_it_expects(store) -> None:
    # Given the breaker opened for an outage, as the sync read it
    outage = BreakerState(
        is_open=True, reason=BreakerReason.SALESFORCE_UNAVAILABLE, message="outage", since=AT, by="sync", updated_at=AT
    )
    assert store.write(outage, expected=BreakerState(is_open=False)) is True
    read = store.read()

    # When an operator pauses (unconditionally), then the probe tries to close what it read before the pause
    pause = BreakerState(is_open=True, reason=BreakerReason.MANUAL, message="hold", since=AT, by="operator:ana")
    assert store.write(pause) is True
    closed = store.write(BreakerState(is_open=False, by="probe"), expected=read)

    # Then the close is refused and the pause stands; a trip expecting closed is refused too
    assert closed is False
    assert store.write(outage, expected=BreakerState(is_open=False)) is False
    assert store.read().reason is BreakerReason.MANUAL
    # And a write expecting exactly the stored state lands
    assert store.write(BreakerState(is_open=False, by="probe"), expected=store.read()) is True
    assert store.read().is_open is False
