"""Settling Salesforce's per-record answers: a written record is committed (its version recorded), a refused one
is parked or waits by the kind of its error, and its lease is released."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.models.salesforce import RecordResult
from nrtsync.domain.outcomes import ErrorKind, Outcome, RetryReason, classify
from nrtsync.observability import logger
from nrtsync.services.sync.leases import RecordLeases
from nrtsync.services.sync.retry_policy import RetryPolicy
from nrtsync.services.sync.session_ledger import SessionLedger
from nrtsync.services.sync.settings import SyncSettings


class Settler:
    """Records what became of each change Salesforce answered for."""

    def __init__(self, settings: SyncSettings, *, leases: RecordLeases, retry_policy: RetryPolicy) -> None:
        self._retry_delay_seconds = settings.retry_delay_seconds
        self._parent_wait_max_tries = settings.parent_wait_max_tries
        self._leases = leases
        self._retry_policy = retry_policy

    def settle(
        self,
        ledger: SessionLedger,
        pairs: Sequence[tuple[IncomingChange, RecordResult]],
        answered_at: datetime,
        *,
        in_doubt: bool = False,
    ) -> None:
        """``in_doubt``: Salesforce answered only after an attempt that may still commit (the adapter's retry after a
        read timeout or a 5xx): the records stay closed to other changes until it surely ended."""
        written = [(incoming, result) for incoming, result in pairs if result.success]
        committed = self._leases.commit(written, owner=ledger.session_id, in_doubt=in_doubt)
        for (incoming, result), recorded in zip(written, committed, strict=True):
            # Uncommitted means an older redelivery could later look newer than what is stored; writing
            # the same version again on retry is harmless, so the change goes back to the queue.
            if not recorded:
                logger.warning("written but not recorded; will rewrite", extra={"record": incoming.change.record_key})
                ledger.schedule_retry(incoming, self._retry_delay_seconds, RetryReason.STATE_UNAVAILABLE)
            else:
                ledger.record(incoming, Outcome.WRITTEN, at=answered_at, salesforce_id=result.salesforce_id)

        refused = [(incoming, result) for incoming, result in pairs if not result.success]
        for incoming, result in refused:
            errors = [(e.status_code, e.message) for e in result.errors]
            code = errors[0][0] if errors else "UNKNOWN_ERROR"
            message = "; ".join(f"{c}: {m}" for c, m in errors) or "Salesforce gave no error detail"
            kind = classify(errors)
            tries = incoming.receive_count
            if kind is ErrorKind.PARENT_MISSING and tries >= self._parent_wait_max_tries:
                ledger.park(incoming, code, f"parent still missing after {tries} tries: {message}")
            elif kind is ErrorKind.PERMANENT:
                ledger.park(incoming, code, message)
            else:
                ledger.schedule_retry(incoming, self._retry_policy.backoff(tries), code, message)
        refused_changes = [incoming for incoming, _ in refused]
        if in_doubt:
            self._leases.release_in_doubt(refused_changes, owner=ledger.session_id)
        else:
            self._leases.release(refused_changes, owner=ledger.session_id)
