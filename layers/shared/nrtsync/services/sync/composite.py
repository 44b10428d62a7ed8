"""Sending the session's records: sObject Collections of up to 200 records, up to five in one Composite call (one
API call), and bisection of a collection Salesforce refuses whole."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.mapping import MappingConfig
from nrtsync.domain.models.salesforce import (
    GONE_CODES,
    CollectionDelete,
    CollectionUpsert,
    RecordResult,
    SalesforceError,
    SalesforceRequestError,
    SalesforceRetryableError,
)
from nrtsync.domain.outcomes import RetryReason
from nrtsync.ports.salesforce import MAX_COLLECTIONS_PER_COMPOSITE, SalesforcePort
from nrtsync.services.sync.call_outcomes import CallOutcomes
from nrtsync.services.sync.leases import RecordLeases
from nrtsync.services.sync.records import Pair
from nrtsync.services.sync.retry_policy import RetryPolicy
from nrtsync.services.sync.session_ledger import SessionLedger
from nrtsync.services.sync.settle import Settler

SOBJECT_COLLECTION_MAX = 200


@dataclass(frozen=True)
class Chunk:
    """Up to 200 claimed changes of one object type: one sObject Collections upsert, or (``delete``) one
    sObject Collections delete whose records are ``{"Id": <Salesforce Id>}``."""

    object_type: str
    pairs: list[Pair]
    refusal: SalesforceError | None = None  # set on a half of a collection Salesforce refused or failed whole
    delete: bool = False

    @property
    def changes(self) -> list[IncomingChange]:
        return [incoming for incoming, _ in self.pairs]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for _, record in self.pairs]


class CollectionSender:
    """Sends the deletes and upserts of a session in order, five collections a call, until the deadline."""

    def __init__(
        self,
        *,
        mapping: MappingConfig,
        salesforce: SalesforcePort,
        leases: RecordLeases,
        calls: CallOutcomes,
        settler: Settler,
        retry_policy: RetryPolicy,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self._mapping = mapping
        self._salesforce = salesforce
        self._leases = leases
        self._calls = calls
        self._settler = settler
        self._retry_policy = retry_policy
        self._clock = clock
        self._monotonic = monotonic

    def send(self, ledger: SessionLedger, deletes: list[Pair], upserts: list[Pair], deadline: float) -> None:
        # Deletes go first, children before parents (the reverse of the write order), then upserts, parents before
        # children: a child deleted and its parent upserted in one batch both succeed, and a parent's delete never
        # runs before its children's. A child upserted in the batch that deletes its parent fails as a child
        # whose parent is missing (retried, then parked), which is right: Zuora deleted the parent.
        chunks = _chunks(deletes, list(reversed(self._mapping.write_order())), delete=True)
        chunks += _chunks(upserts, self._mapping.write_order(), delete=False)
        # Up to five collections travel in one Composite call, executed in order: one API call.
        # The halves of a collection Salesforce refused whole go out next, ahead of the rest (isolation).
        pending = deque(chunks)
        while pending:
            batch = [pending.popleft() for _ in range(min(MAX_COLLECTIONS_PER_COMPOSITE, len(pending)))]
            pending.extendleft(reversed(self._send_call(ledger, batch, deadline)))

    def _send_call(self, ledger: SessionLedger, chunks: list[Chunk], deadline: float) -> list[Chunk]:
        """One API call for 1..5 collections; returns the halves of the collections refused whole, to send next."""
        owner = ledger.session_id
        everything = [incoming for chunk in chunks for incoming in chunk.changes]
        if self._calls.stopped(ledger) or self._monotonic() >= deadline:
            for chunk in chunks:
                self._calls.not_sent(ledger, chunk.changes, chunk.refusal)
                # Halves of a collection whose failed call may still commit: the doubt stays on them.
                self._release(ledger, chunk.changes, chunk.refusal)
            return []
        requests = [self._request_of(chunk) for chunk in chunks]
        try:
            answers = self._salesforce.upsert_collections(requests, deadline=deadline)
        except SalesforceError as exc:
            if _failed_again(chunks, exc):
                return [half for chunk in chunks for half in self._isolate(ledger, chunk, exc)]
            self._fail(ledger, everything, exc)
            return []
        self._calls.answered(ledger)
        answered_at = self._clock()
        in_doubt = self._salesforce.last_call_in_doubt
        halves: list[Chunk] = []
        for chunk, answer in zip(chunks, answers, strict=True):
            if _refused_whole(answer) and len(chunk.pairs) > 1:
                halves += _halves(chunk, answer)
            elif isinstance(answer, SalesforceError) and _failed_again([chunk], answer):
                halves += self._isolate(ledger, chunk, answer)
            elif isinstance(answer, SalesforceError):
                self._fail(ledger, chunk.changes, answer)
            elif len(answer) != len(chunk.changes):
                # Never guess outcomes for a whole batch: an answer we cannot pair with records is retried.
                for incoming in chunk.changes:
                    delay = self._retry_policy.backoff(incoming.receive_count)
                    ledger.schedule_retry(incoming, delay, RetryReason.UNPAIRED_RESPONSE)
                self._leases.release(chunk.changes, owner=owner)
            elif chunk.delete:
                results = [_deleted(result, record["Id"]) for result, record in zip(answer, chunk.records, strict=True)]
                pairs = list(zip(chunk.changes, results, strict=True))
                self._settler.settle(ledger, pairs, answered_at, in_doubt=in_doubt)
            else:
                pairs = list(zip(chunk.changes, answer, strict=True))
                self._settler.settle(ledger, pairs, answered_at, in_doubt=in_doubt)
        return halves

    def _fail(self, ledger: SessionLedger, changes: list[IncomingChange], exc: SalesforceError) -> None:
        """A call (or one collection of it) failed: its changes wait or are parked, and their leases go; after a
        failure in doubt, only the same changes may claim their records until Salesforce has surely ended it."""
        self._calls.failed(ledger, changes, exc)
        self._release(ledger, changes, exc)

    def _release(self, ledger: SessionLedger, changes: list[IncomingChange], cause: SalesforceError | None) -> None:
        if isinstance(cause, SalesforceRetryableError) and cause.in_doubt:
            self._leases.release_in_doubt(changes, owner=ledger.session_id)
        else:
            self._leases.release(changes, owner=ledger.session_id)

    def _isolate(self, ledger: SessionLedger, chunk: Chunk, exc: SalesforceError) -> list[Chunk]:
        """A collection that failed with a 5xx again goes out in halves (sending the same values again is
        harmless even if the failed call commits late); a single record fails as usual."""
        if len(chunk.pairs) > 1:
            return _halves(chunk, exc)
        self._fail(ledger, chunk.changes, exc)
        return []

    def _request_of(self, chunk: Chunk) -> CollectionUpsert | CollectionDelete:
        obj = self._mapping.objects[chunk.object_type]
        if chunk.delete:
            return CollectionDelete(sobject=obj.sobject, ids=[record["Id"] for record in chunk.records])
        return CollectionUpsert(sobject=obj.sobject, external_id_field=obj.external_id_field, records=chunk.records)


def _refused_whole(answer: list[RecordResult] | SalesforceError) -> TypeGuard[SalesforceRequestError]:
    """Salesforce refused the collection as a whole with 400 (e.g. JSON_PARSER_ERROR: one value it cannot
    deserialize into its field's type), so its records have no results of their own."""
    return isinstance(answer, SalesforceRequestError) and answer.http_status == 400


def _failed_again(chunks: list[Chunk], exc: SalesforceError) -> bool:
    """The collections failed with a 5xx (Salesforce's ``UNKNOWN_EXCEPTION``: one record can cause it) and not for
    the first time: every change in them is back after an earlier failure, or they are already halves of one.
    Then they are bisected like a collection refused whole, rather than sending every neighbour of one bad record
    to the dead-letter queue; a first 5xx is taken for an outage and simply retried."""
    if not (isinstance(exc, SalesforceRetryableError) and exc.server_failed):
        return False
    return all(
        chunk.refusal is not None or all(incoming.receive_count >= 2 for incoming in chunk.changes) for chunk in chunks
    )


def _halves(chunk: Chunk, refusal: SalesforceError) -> list[Chunk]:
    """Bisection: a refused collection's records go again in two halves, so the good ones are written and the bad
    record ends alone and fails with Salesforce's code. One bad record in n costs about log2(n) extra calls (the
    two halves of each level share one Composite call); if every record is bad, 2n - 2 more collections go out,
    five per call. The deadline bounds it: what is not isolated in time waits (``CallOutcomes.not_sent``)."""
    middle = len(chunk.pairs) // 2
    return [
        Chunk(chunk.object_type, chunk.pairs[:middle], refusal, delete=chunk.delete),
        Chunk(chunk.object_type, chunk.pairs[middle:], refusal, delete=chunk.delete),
    ]


def _chunks(pairs: list[Pair], order: list[str], *, delete: bool) -> list[Chunk]:
    """The collections of ``pairs``: per object type in ``order``, up to 200 records each."""
    by_object: dict[str, list[Pair]] = defaultdict(list)
    for incoming, record in pairs:
        by_object[incoming.change.object_type].append((incoming, record))
    chunks: list[Chunk] = []
    for object_type in order:
        group = by_object.get(object_type, [])
        chunks += [
            Chunk(object_type, group[start : start + SOBJECT_COLLECTION_MAX], delete=delete)
            for start in range(0, len(group), SOBJECT_COLLECTION_MAX)
        ]
    return chunks


def _deleted(result: RecordResult, salesforce_id: str) -> RecordResult:
    """A delete's result as the session settles it: a record already gone (``GONE_CODES``) is deleted too, and
    the Id it had is kept on the tombstone either way."""
    gone = not result.success and bool(result.errors) and all(e.status_code in GONE_CODES for e in result.errors)
    if result.success or gone:
        return RecordResult(success=True, salesforce_id=salesforce_id)
    return result
