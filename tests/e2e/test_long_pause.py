"""Issue 11's long pause, end to end through the local deployment: each condition under which Salesforce cannot
take writes held for 30 simulated minutes (``nrtsync_local.drill.pause``), then cleared. Before the breaker, each
wait was a redelivery: a budget pause reached the DLQ after about 10 minutes, an outage after about 20."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nrtsync_local.drill.pause import CONDITIONS, PauseDrill, PauseFigures, pause_drill

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def drill() -> Iterator[PauseDrill]:
    with pause_drill(records=30, hold_minutes=30) as started:
        yield started


@pytest.mark.parametrize("condition", CONDITIONS)
def test_a_30_minute_pause_loses_nothing_and_spends_no_receives(drill: PauseDrill, condition: str) -> None:
    figures: PauseFigures = drill.hold(condition)

    expected_reason = {
        "budget": "API_BUDGET_REACHED",
        "allocation": "REQUEST_LIMIT_EXCEEDED",
        "credentials": "SALESFORCE_AUTH",
        "outage": "SALESFORCE_UNAVAILABLE",
    }[condition]
    assert figures.problems == []
    assert figures.reason == expected_reason
    assert figures.held_simulated_minutes >= 30
    assert figures.messages_received_while_paused == 0
    assert figures.receive_calls_while_paused == 0
    assert figures.dlq == 0
    assert figures.written == 30
    assert (figures.stale_in_salesforce, figures.missing_in_salesforce) == (0, 0)
