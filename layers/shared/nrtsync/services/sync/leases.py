"""The session's round trips to the state table: claims, releases, commits and parked marks of records.

DynamoDB round trips dominate a session; boto3 clients are thread-safe, so they overlap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.inherit import kept_of
from nrtsync.domain.mapping import MappingConfig
from nrtsync.domain.models.callout import QueuedChange, record_key_of
from nrtsync.domain.models.salesforce import RecordResult
from nrtsync.domain.zoql import CALLOUT_SOURCE, change_source
from nrtsync.observability import logger
from nrtsync.ports.history import Failure
from nrtsync.ports.state import Claim, ClaimStatus, StateUnavailableError, VersionStore
from nrtsync.services.sweep.service import version_date_part

_STATE_WORKERS = 16
# Salesforce's longest request: an Apex transaction runs at most 10 minutes (Apex Developer Guide, "Execution
# Governors and Limits": maximum execution time for each Apex transaction), whatever the client's timeout.
SALESFORCE_LONGEST_REQUEST_SECONDS = 600
# Beyond it, for the clocks of Salesforce and of the state table's readers to disagree.
_DOUBT_MARGIN_SECONDS = 60


def parallel[T, R](fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``fn`` over ``items`` in threads (in order), or in this thread for one item."""
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(_STATE_WORKERS, len(items))) as pool:
        return list(pool.map(fn, items))


class RecordLeases:
    """Each record's lease and version in the state table, as one session (``owner``) takes and settles them."""

    def __init__(self, state: VersionStore, mapping: MappingConfig) -> None:
        self._state = state
        self._mapping = mapping
        # Per record claimed: its settled notification ids as the claim found them, for the commit to carry on.
        # Only the lease's owner writes them, so they are still current at commit.
        self._settled: dict[str, Mapping[str, int]] = {}
        # Records claimed for a callout whose UpdatedDate equals the written one's, with other content: to recheck.
        self._ties: set[str] = set()

    def claim(
        self, changes: Sequence[IncomingChange], *, owner: str, lease_until_ms: int
    ) -> list[tuple[IncomingChange, Claim | None]]:
        """Each change with its claim, or None when the state table could not be reached for it."""

        def claim(incoming: IncomingChange) -> tuple[IncomingChange, Claim | None]:
            change = incoming.change
            # Only Zuora retries a notification; a sweep's id names the record and date, the same on every run.
            from_callout = change_source(change) == CALLOUT_SOURCE
            try:
                result = self._state.claim(
                    change.record_key,
                    change.version,
                    change.content_hash,
                    owner=owner,
                    lease_until_ms=lease_until_ms,
                    notification_id=change.notification_id if from_callout else None,
                )
            except StateUnavailableError:
                return incoming, None
            if result.status is ClaimStatus.CLAIMED:
                self._settled[change.record_key] = result.settled
                if from_callout and _same_updated_date(result.written_version, change):
                    self._ties.add(change.record_key)
            elif result.status is ClaimStatus.DUPLICATE and not from_callout:
                self._recheck_done(change.record_key)
            return incoming, result

        return parallel(claim, changes)

    def commit(
        self, written: Sequence[tuple[IncomingChange, RecordResult]], *, owner: str, in_doubt: bool = False
    ) -> list[bool]:
        """Record each written change's version (a delete's as a tombstone); False where it was not recorded.
        ``in_doubt``: the call succeeded only after an attempt that may still commit (``release_in_doubt``)."""
        doubt_until_ms = _doubt_until_ms() if in_doubt else None

        def commit(pair: tuple[IncomingChange, RecordResult]) -> bool:
            incoming, result = pair
            change = incoming.change
            try:
                return self._state.commit(
                    change.record_key,
                    change.version,
                    change.content_hash,
                    owner=owner,
                    salesforce_id=result.salesforce_id,
                    kept=None if change.is_delete else kept_of(self._mapping, change),
                    deleted=change.is_delete,
                    notification_id=change.notification_id,
                    settled=self._settled.pop(change.record_key, {}),
                    recheck=_pop(self._ties, change.record_key),
                    doubt_until_ms=doubt_until_ms,
                )
            except StateUnavailableError:
                return False

        return parallel(commit, written)

    def release(self, changes: Sequence[IncomingChange], *, owner: str) -> None:
        def release(incoming: IncomingChange) -> None:
            self._settled.pop(incoming.change.record_key, None)
            self._ties.discard(incoming.change.record_key)
            try:
                self._state.release(incoming.change.record_key, owner=owner)
            except StateUnavailableError:
                # The lease expires by itself; until then the record's next change waits.
                logger.warning("lease not released", extra={"record": incoming.change.record_key})

        parallel(release, list(changes))

    def release_in_doubt(self, changes: Sequence[IncomingChange], *, owner: str) -> None:
        """Release after a failure that does not prove Salesforce never ran the write (a read timeout, a gateway's 5xx).

        Salesforce goes on executing a request after its client gave up, for as long as its longest request time,
        so the write may still commit. Two things keep a newer version from being overwritten by that late commit:
        until the longest request time has passed, the record is closed to every other change (BUSY); meanwhile the
        same change may claim it again at once and is re-sent, which is harmless whenever the first request lands
        (both carry the same values) and costs the change itself no wait.
        """
        until_ms = _doubt_until_ms()

        def release(incoming: IncomingChange) -> None:
            change = incoming.change
            self._settled.pop(change.record_key, None)
            self._ties.discard(change.record_key)
            try:
                self._state.release_in_doubt(change.record_key, change.content_hash, owner=owner, until_ms=until_ms)
            except StateUnavailableError:
                # The lease then expires by itself, sooner than the doubt: logged for an operator to compare.
                logger.warning("in-doubt write not recorded", extra={"record": change.record_key})

        parallel(release, list(changes))

    def ties_written(self, record_key: str) -> bool:
        """The record's claimed change shares its ``UpdatedDate`` with the version written, with other content."""
        return record_key in self._ties

    def tie_settled(self, record_key: str) -> None:
        """Zuora's current values replace the claimed change: nothing is left for a reconcile run to re-read."""
        self._ties.discard(record_key)

    def _recheck_done(self, record_key: str) -> None:
        """A sweep read the record from Zuora after a recheck mark and found what was written: the mark goes."""
        try:
            self._state.clear_recheck(record_key)
        except StateUnavailableError:
            # The next reconcile run reads the record once more and comes back here.
            logger.warning("recheck mark not cleared", extra={"record": record_key})

    def mark_parked(self, parked: Sequence[Failure]) -> None:
        def mark(failure: Failure) -> None:
            try:
                self._state.mark_parked(record_key_of(failure.object_type, failure.record_id), failure.version)
            except StateUnavailableError:
                # Only a sweep of Zuora reads it: at worst it queues the change again and it is parked again.
                logger.warning("parked version not recorded", extra={"record": failure.record_id})

        parallel(mark, parked)


def _same_updated_date(written_version: str | None, change: QueuedChange) -> bool:
    """Two contents of the record share Zuora's ``UpdatedDate`` (whole seconds: two changes in one second do): the
    receive time orders them, which is not necessarily Zuora's order. ``SameSecondChanges`` reads the record from
    Zuora when it can; otherwise the later receive is written and the record marked, so the next reconcile run reads
    its current values whatever the dates say. A delete is left out: it outranks every change of its date by
    design."""
    if written_version is None or change.is_delete:
        return False
    return version_date_part(written_version) == version_date_part(change.version)


def _doubt_until_ms() -> int:
    # Wall time, as the state table's conditions compare it (leases are set the same way).
    return int(time.time() * 1000) + (SALESFORCE_LONGEST_REQUEST_SECONDS + _DOUBT_MARGIN_SECONDS) * 1000


def _pop(items: set[str], item: str) -> bool:
    found = item in items
    items.discard(item)
    return found
