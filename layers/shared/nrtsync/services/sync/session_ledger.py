"""The session ledger: the one account of what a sync session decided for each incoming change.

Every change ends in exactly one entry: an outcome (``record``), an outcome plus a retry (``schedule_retry``),
or an outcome plus a parked failure (``park``). The ledger then says which messages go back to the queue,
after which delay, and sums the session up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.latency import percentiles
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.outcomes import Outcome, ParkReason
from nrtsync.domain.zoql import RECONCILE_SOURCE, change_source
from nrtsync.ports.history import Failure, RecordOutcome, SessionSummary
from nrtsync.ports.salesforce import ApiUsage


@dataclass
class SessionLedger:
    """The mutable bookkeeping of one invocation."""

    session_id: str
    clock: Callable[[], datetime]
    outcomes: list[RecordOutcome] = field(default_factory=list)
    failures: dict[Failure, tuple[str, str]] = field(default_factory=dict)  # failure -> (message id, receipt)
    retries: dict[str, tuple[str, int]] = field(default_factory=dict)  # message id -> (receipt handle, delay s)
    unreadable: int = 0
    # Released held changes that failed (account key, change): they leave the hold once the session is closed and
    # they are on the failure list.
    held_failed: list[tuple[str, QueuedChange]] = field(default_factory=list)
    api_blocked: bool = False  # the org's API allocation is used up: nothing more goes to Salesforce
    concurrency_limited: bool = False  # Salesforce refused a call for its concurrent long-request limit
    breaker_open: bool = False  # the circuit breaker is (or just went) open: nothing more goes to Salesforce
    salesforce_answered: bool = False  # a call got an answer (the breaker's failure count was reset)

    def record(
        self,
        incoming: IncomingChange,
        outcome: Outcome,
        *,
        at: datetime | None = None,
        salesforce_id: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Record what became of a change."""
        self.outcomes.append(
            RecordOutcome(
                change=incoming.change,
                outcome=outcome,
                decided_at=at or self.clock(),
                salesforce_id=salesforce_id,
                error_code=code,
                error_message=message,
                receive_count=incoming.receive_count,
                source=change_source(incoming.change),
            )
        )

    def schedule_retry(self, incoming: IncomingChange, delay: int, code: str, message: str | None = None) -> None:
        """The change goes back to the queue, visible again after ``delay`` seconds (outcome: waiting)."""
        self.retries[incoming.message_id] = (incoming.receipt_handle, delay)
        self.record(incoming, Outcome.WAITING, code=code, message=message)

    def park(self, incoming: IncomingChange, code: str, message: str) -> None:
        """The change failed for good: it goes to the failure list for an operator (outcome: failed)."""
        change = incoming.change
        failure = Failure(
            object_type=change.object_type,
            record_id=change.record_id,
            version=change.version,
            error_code=code,
            error_message=message,
            failed_at=self.clock(),
            session_id=self.session_id,
            body=change.model_dump_json(),
            receive_count=incoming.receive_count,
        )
        self.failures[failure] = (incoming.message_id, incoming.receipt_handle)
        self.record(incoming, Outcome.FAILED, code=code, message=message)

    def park_unreadable(self, message_id: str, receipt_handle: str, body: str, receive_count: int, error: str) -> None:
        """A message that is no queued change at all: parked with its body, counted as failed and malformed."""
        self.unreadable += 1
        failure = Failure(
            object_type="(unreadable)",
            record_id=message_id,
            version="0",
            error_code=ParkReason.MALFORMED_MESSAGE,
            error_message=error[:2_000],
            failed_at=self.clock(),
            session_id=self.session_id,
            body=body[:350_000],
            receive_count=receive_count,
        )
        self.failures[failure] = (message_id, receipt_handle)

    def retry_unparked(self, not_parked: Sequence[Failure], delay: int) -> None:
        """A failure we could not park is not acknowledged: its message comes back and is parked later."""
        for failure in not_parked:
            message_id, receipt_handle = self.failures[failure]
            self.retries[message_id] = (receipt_handle, delay)

    def retries_by_delay(self) -> dict[int, list[str]]:
        """The receipt handles to hand back to the queue, grouped by their delay."""
        by_delay: dict[int, list[str]] = defaultdict(list)
        for handle, delay in self.retries.values():
            by_delay[delay].append(handle)
        return dict(by_delay)

    def summary(
        self, *, started_at: datetime, records_in: int, api_calls: int, api_usage: ApiUsage | None
    ) -> SessionSummary:
        summary = SessionSummary(
            session_id=self.session_id,
            started_at=started_at,
            ended_at=self.clock(),
            records_in=records_in,
            malformed=self.unreadable,
            api_calls=api_calls,
            api_usage_percent=round(api_usage.percent, 2) if api_usage else None,
        )
        for outcome in self.outcomes:
            summary.counts[outcome.outcome] = summary.counts.get(outcome.outcome, 0) + 1
        latencies = percentiles([o.sync_ms for o in self.outcomes if o.outcome is Outcome.WRITTEN], (50, 90))
        summary.latency_p50_ms, summary.latency_p90_ms = latencies[50], latencies[90]
        summary.counts[Outcome.FAILED] = summary.counts.get(Outcome.FAILED, 0) + self.unreadable
        summary.recovered = sum(
            1 for o in self.outcomes if o.outcome is Outcome.WRITTEN and o.source == RECONCILE_SOURCE
        )
        return summary
