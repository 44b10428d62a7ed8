"""What the services need from Salesforce: sObject Collections writes and the org's API usage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    # Annotations only: the metrics function imports this module (for ApiUsage) and never loads the callout or
    # Salesforce models.
    from nrtsync.domain.models.salesforce import CollectionDelete, CollectionUpsert, RecordResult, SalesforceError


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


class SalesforcePort(Protocol):
    """What the sync logic needs from Salesforce."""

    def upsert_collections(
        self, requests: Sequence[CollectionUpsert | CollectionDelete], *, deadline: float
    ) -> list[list[RecordResult] | SalesforceError]:
        """One API call for 1..5 collections, upserts or deletes: a single request goes as a plain sObject
        Collections PATCH or DELETE, several as one Composite request with the subrequests in the
        given order (children's deletes before parents', parents' upserts before children's: the caller's job).
        A delete's results are Salesforce's DeleteResults, one per Id in order (an Id already gone answers
        ``success: false`` with one of ``GONE_CODES``; the caller decides what that means).
        Returns, per request in order, its per-record results, or the SalesforceError for that
        subrequest alone (SalesforceRequestError for a 4xx subrequest, SalesforceRetryableError for a 5xx one).
        A 400 SalesforceRequestError means Salesforce refused that collection as a whole (e.g. JSON_PARSER_ERROR for
        one value it cannot deserialize into its field's type): its records have no results of their own.
        A failure of the whole call raises (retryable/limit/auth/request errors) after the adapter's retries, token
        renewal and timeouts; ``deadline`` is a ``time.monotonic()`` value after which no new attempt starts.
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

    @property
    def last_call_in_doubt(self) -> bool:
        """The last ``upsert_collections`` answered only after an attempt in doubt (a read timeout, a gateway's
        5xx): that attempt may still commit in Salesforce, after the answer (``SalesforceRetryableError.in_doubt``)."""
        ...
