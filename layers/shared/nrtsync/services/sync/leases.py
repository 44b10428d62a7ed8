"""The session's round trips to the state table: claims, releases, commits and parked marks of records.

DynamoDB round trips dominate a session; boto3 clients are thread-safe, so they overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.inherit import kept_of
from nrtsync.domain.mapping import MappingConfig
from nrtsync.domain.models.callout import record_key_of
from nrtsync.domain.models.salesforce import RecordResult
from nrtsync.observability import logger
from nrtsync.ports.history import Failure
from nrtsync.ports.state import Claim, StateUnavailableError, VersionStore

_STATE_WORKERS = 16


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

    def claim(
        self, changes: Sequence[IncomingChange], *, owner: str, lease_until_ms: int
    ) -> list[tuple[IncomingChange, Claim | None]]:
        """Each change with its claim, or None when the state table could not be reached for it."""

        def claim(incoming: IncomingChange) -> tuple[IncomingChange, Claim | None]:
            change = incoming.change
            try:
                result = self._state.claim(
                    change.record_key, change.version, change.content_hash, owner=owner, lease_until_ms=lease_until_ms
                )
            except StateUnavailableError:
                return incoming, None
            return incoming, result

        return parallel(claim, changes)

    def commit(self, written: Sequence[tuple[IncomingChange, RecordResult]], *, owner: str) -> list[bool]:
        """Record each written change's version (a delete's as a tombstone); False where it was not recorded."""

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
                )
            except StateUnavailableError:
                return False

        return parallel(commit, written)

    def release(self, changes: Sequence[IncomingChange], *, owner: str) -> None:
        def release(incoming: IncomingChange) -> None:
            try:
                self._state.release(incoming.change.record_key, owner=owner)
            except StateUnavailableError:
                # The lease expires by itself; until then the record's next change waits.
                logger.warning("lease not released", extra={"record": incoming.change.record_key})

        parallel(release, list(changes))

    def mark_parked(self, parked: Sequence[Failure]) -> None:
        def mark(failure: Failure) -> None:
            try:
                self._state.mark_parked(record_key_of(failure.object_type, failure.record_id), failure.version)
            except StateUnavailableError:
                # Only a sweep of Zuora reads it: at worst it queues the change again and it is parked again.
                logger.warning("parked version not recorded", extra={"record": failure.record_id})

        parallel(mark, parked)
