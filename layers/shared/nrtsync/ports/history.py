"""The sync history's contract: what one session did, record by record, and the failure list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from nrtsync.domain.outcomes import Outcome

if TYPE_CHECKING:
    # Annotations only: the metrics function imports this module (for ApiUsage) and never loads the callout or
    # Salesforce models.
    from nrtsync.domain.models.callout import QueuedChange


class HistoryUnavailableError(RuntimeError):
    """The history table could not be written (what matters: a failure not parked must be retried)."""


@dataclass(frozen=True)
class RecordOutcome:
    change: QueuedChange
    outcome: Outcome
    decided_at: datetime
    salesforce_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    receive_count: int = 1
    source: str = "callout"
    """Where the change came from: ``callout``, or the sweep that read it from Zuora (``reconcile``, ``backfill``)."""

    @property
    def sync_ms(self) -> int:
        return max(0, int((self.decided_at - self.change.received_at).total_seconds() * 1000))

    @property
    def e2e_ms(self) -> int:
        return max(0, int((self.decided_at - self.change.updated_date).total_seconds() * 1000))


@dataclass
class SessionSummary:
    session_id: str
    started_at: datetime
    ended_at: datetime
    records_in: int = 0
    counts: dict[Outcome, int] = field(default_factory=dict)
    malformed: int = 0
    api_calls: int = 0
    api_usage_percent: float | None = None
    latency_p50_ms: int | None = None
    latency_p90_ms: int | None = None
    recovered: int = 0
    """Changes reconciliation read from Zuora (their callouts were lost) that this session wrote to Salesforce."""

    @property
    def duration_ms(self) -> int:
        return int((self.ended_at - self.started_at).total_seconds() * 1000)

    def as_log(self) -> dict[str, Any]:
        """The session as one structured log line (the dashboard's Logs Insights queries read these keys)."""
        return {
            "session_id": self.session_id,
            "started_at": self.started_at.isoformat(timespec="milliseconds"),
            "duration_ms": self.duration_ms,
            "records_in": self.records_in,
            "written": self.counts.get(Outcome.WRITTEN, 0),
            "superseded": self.counts.get(Outcome.SUPERSEDED, 0),
            "duplicates": self.counts.get(Outcome.DUPLICATE, 0),
            "stale_skipped": self.counts.get(Outcome.STALE, 0),
            "waiting": self.counts.get(Outcome.WAITING, 0),
            "failed": self.counts.get(Outcome.FAILED, 0),
            "malformed": self.malformed,
            "api_calls": self.api_calls,
            "api_usage_percent": self.api_usage_percent,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p90_ms": self.latency_p90_ms,
            "recovered": self.recovered,
        }


@dataclass(frozen=True)
class Failure:
    """A change Salesforce refused for good (or that could not be read), parked for an operator."""

    object_type: str
    record_id: str
    version: str
    error_code: str
    error_message: str
    failed_at: datetime
    session_id: str
    body: str
    """The original queue message, so a retry re-sends exactly what Zuora sent."""
    receive_count: int = 1


class HistoryWriter(Protocol):
    def write_session(self, session: SessionSummary, outcomes: Sequence[RecordOutcome]) -> None: ...

    def park_failures(self, failures: Sequence[Failure]) -> list[Failure]: ...
