"""The age of the oldest waiting change, from what the sync records: the number its alarm watches.

SQS's ApproximateAgeOfOldestMessage leaves out messages received three or more times, which are exactly the
changes the sync hands back to wait (a child for its parent, a busy record, a batch that tripped the breaker).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from nrtsync.app.sync import oldest_waiting_seconds, report_session
from nrtsync.domain.outcomes import Outcome
from nrtsync.observability import metrics
from nrtsync.observability.names import OLDEST_WAITING_CHANGE_AGE, SYNC_SESSION_METRIC_NAMES
from nrtsync.ports.history import RecordOutcome, SessionSummary
from nrtsync.services.sync.service import SyncResult
from tests.support.sync_world import T0, change

DECIDED = T0 + timedelta(hours=1)


def _outcome(outcome: Outcome, waited: timedelta, *, receive_count: int = 1) -> RecordOutcome:
    queued = change(record_id=f"A{waited.seconds}", received=DECIDED - waited)
    return RecordOutcome(change=queued, outcome=outcome, decided_at=DECIDED, receive_count=receive_count)


def test_the_oldest_waiting_change_counts_and_settled_ones_do_not() -> None:
    outcomes = [
        _outcome(Outcome.WRITTEN, timedelta(minutes=50)),  # settled: no longer waits, however old
        _outcome(Outcome.WAITING, timedelta(minutes=12), receive_count=7),  # SQS's own age no longer sees it
        _outcome(Outcome.WAITING, timedelta(seconds=30)),
        _outcome(Outcome.FAILED, timedelta(minutes=40)),  # parked on the failure list, off the queue
    ]
    assert oldest_waiting_seconds(outcomes) == 12 * 60
    assert oldest_waiting_seconds(outcomes[:1]) == 0


def test_each_session_publishes_the_age_even_when_nothing_waits(capsys: pytest.CaptureFixture[str]) -> None:
    # Given two sessions, one that left a change waiting for 15 minutes and one that settled everything
    summary = SessionSummary(session_id="s1", started_at=DECIDED, ended_at=DECIDED, records_in=2)
    waiting = SyncResult([], summary, [_outcome(Outcome.WAITING, timedelta(minutes=15))])
    settled = SyncResult([], summary, [_outcome(Outcome.WRITTEN, timedelta(minutes=15))])
    # When each is reported and its metrics flushed
    for result in (waiting, settled):
        report_session(result)
        metrics.flush_metrics()
    # Then OldestWaitingChangeAge went out in seconds, 900 then 0 (Maximum over a period: the oldest)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if OLDEST_WAITING_CHANGE_AGE in line]
    assert [doc[OLDEST_WAITING_CHANGE_AGE] for doc in emf] == [[900.0], [0.0]]  # Powertools writes lists
    [definition] = [
        m for m in emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"] if m["Name"] == OLDEST_WAITING_CHANGE_AGE
    ]
    assert definition["Unit"] == "Seconds"
    assert OLDEST_WAITING_CHANGE_AGE in SYNC_SESSION_METRIC_NAMES
