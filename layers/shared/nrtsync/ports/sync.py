"""The sync function's contracts: what the sync service needs from Salesforce, the state table, the history
table and the queue, and the values that cross those boundaries. Adapters implement these; the service
imports only this module (never an adapter) for them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from nrtsync.outcomes import Outcome

if TYPE_CHECKING:
    # Annotations only: the metrics function imports this module (for ApiUsage) and never loads the callout or
    # Salesforce models.
    from nrtsync.models.callout import QueuedChange
    from nrtsync.models.salesforce import CollectionDelete, CollectionUpsert, RecordResult, SalesforceError

# A Composite request takes up to 25 subrequests, of which at most 5 may be sObject Collections (or query) ones.
MAX_COLLECTIONS_PER_COMPOSITE = 5


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """The org's daily API allocation as Salesforce last reported it (``Sforce-Limit-Info`` or ``/limits``).

    The one type for it everywhere (the adapter, the state table, the budget guard, the published metric), so
    that one rule decides the percentage: an allocation of 0 means nothing is left, which is 100 % used (the
    safe reading: the budget guard stops and the metric shows a full allocation, never 0 %).
    """

    used: int
    limit: int
    observed_at: datetime

    def __post_init__(self) -> None:
        if self.used < 0 or self.limit < 0:
            raise ValueError(f"API usage cannot be negative (used={self.used}, limit={self.limit})")

    @property
    def percent(self) -> float:
        """Share of the allocation used, 0..100+ (an allocation of 0 counts as used up)."""
        return 100.0 * self.used / self.limit if self.limit > 0 else 100.0


# -- Salesforce ----------------------------------------------------------------------------------------


class SalesforcePort(Protocol):
    """What the sync logic needs from Salesforce."""

    def upsert(
        self, sobject: str, external_id_field: str, records: list[dict[str, Any]], *, deadline: float
    ) -> list[RecordResult]:
        """Upserts records (without the ``attributes`` wrapper) by external ID, 200 per call, allOrNone false.

        Returns one result per record, in input order. ``deadline`` is a ``time.monotonic()`` value after
        which no new attempt starts.
        """
        ...

    def upsert_collections(
        self, requests: Sequence[CollectionUpsert | CollectionDelete], *, deadline: float
    ) -> list[list[RecordResult] | SalesforceError]:
        """One API call for 1..5 collections, upserts or deletes: a single request goes as a plain sObject
        Collections PATCH (as upsert does) or DELETE, several as one Composite request with the subrequests in the
        given order (children's deletes before parents', parents' upserts before children's: the caller's job).
        A delete's results are Salesforce's DeleteResults, one per Id in order (an Id already gone answers
        ``success: false`` with one of ``GONE_CODES``; the caller decides what that means).
        Returns, per request in order, its per-record results, or the SalesforceError for that
        subrequest alone (SalesforceRequestError for a 4xx subrequest, SalesforceRetryableError for a 5xx one).
        A 400 SalesforceRequestError means Salesforce refused that collection as a whole (e.g. JSON_PARSER_ERROR for
        one value it cannot deserialize into its field's type): its records have no results of their own.
        A failure of the whole call raises exactly as upsert does (retryable/limit/auth/request errors), with the
        same retries, token renewal, timeouts and deadline handling.
        """
        ...

    def find_id(self, sobject: str, external_id_field: str, value: str, *, deadline: float) -> str | None:
        """The Salesforce Id of the record whose external ID is ``value`` (one API call), None if there is none."""
        ...

    def fetch_api_usage(self, *, deadline: float) -> ApiUsage:
        """Reads the org's daily API allocation from ``/limits``."""
        ...

    @property
    def api_usage(self) -> ApiUsage | None:
        """The last ``Sforce-Limit-Info`` seen, if any."""
        ...

    @property
    def api_calls(self) -> int:
        """API requests made by this adapter (token requests not counted)."""
        ...


# -- the state table ----------------------------------------------------------------------------------


class StateUnavailableError(RuntimeError):
    """The state table could not be read or written (retryable)."""


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"
    DUPLICATE = "duplicate"
    STALE = "stale"
    BUSY = "busy"


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    written_version: str | None = None
    lease_until_ms: int | None = None
    """For BUSY: when the other writer's lease expires (a retry before then is wasted)."""


class VersionStore(Protocol):
    def claim(self, record_key: str, version: str, content_hash: str, *, owner: str, lease_until_ms: int) -> Claim: ...

    def commit(
        self,
        record_key: str,
        version: str,
        content_hash: str,
        *,
        owner: str,
        salesforce_id: str | None,
        kept: Mapping[str, str | None] | None = None,
        deleted: bool = False,
    ) -> bool:
        """Record ``version`` as written (``deleted``: as a tombstone, so an older change stays stale)."""
        ...

    def release(self, record_key: str, *, owner: str) -> None: ...

    def mark_parked(self, record_key: str, version: str) -> None:
        """``version`` is on the failure list (an operator's job): a sweep of Zuora must not queue it again."""
        ...

    def kept_values(self, record_keys: Collection[str]) -> dict[str, dict[str, str | None]]: ...

    def salesforce_ids(self, record_keys: Collection[str]) -> dict[str, str]:
        """The Salesforce Id last written for each record that has one (record key -> Id)."""
        ...

    def api_usage(self) -> ApiUsage | None: ...

    def save_api_usage(self, usage: ApiUsage) -> None: ...


# -- the history table --------------------------------------------------------------------------------


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


# -- the queue -----------------------------------------------------------------------------------------


class RetryScheduler(Protocol):
    """Hands messages back to the queue, visible again after ``seconds``; returns the handles it could not."""

    def delay(self, receipt_handles: Iterable[str], seconds: int) -> list[str]: ...
