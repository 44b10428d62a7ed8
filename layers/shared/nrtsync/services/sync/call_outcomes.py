"""What a Salesforce call's answer or failure means for a session: the breaker is told, and the changes that were
not written wait on the queue (or, for a request Salesforce refuses outright, are parked)."""

from __future__ import annotations

from collections.abc import Sequence

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.models.salesforce import (
    SalesforceAuthError,
    SalesforceConcurrencyLimitError,
    SalesforceError,
    SalesforceLimitExceededError,
    SalesforceRequestError,
)
from nrtsync.domain.outcomes import RetryReason
from nrtsync.observability import logger
from nrtsync.ports.breaker import BreakerReason
from nrtsync.services.breaker.service import CircuitBreaker
from nrtsync.services.sync.retry_policy import MAX_RETRY_DELAY_SECONDS, RetryPolicy
from nrtsync.services.sync.session_ledger import SessionLedger
from nrtsync.services.sync.settings import SyncSettings


class CallOutcomes:
    """Turns calls answered, calls failed and calls not made into breaker reports and waiting changes."""

    def __init__(self, settings: SyncSettings, *, breaker: CircuitBreaker | None, retry_policy: RetryPolicy) -> None:
        self._recheck_seconds = settings.api_usage_recheck_seconds
        self._breaker = breaker
        self._retry_policy = retry_policy

    @staticmethod
    def stopped(ledger: SessionLedger) -> bool:
        """Nothing more goes to Salesforce in this session (allocation used up, breaker open, concurrency limit)."""
        return ledger.api_blocked or ledger.breaker_open or ledger.concurrency_limited

    def answered(self, ledger: SessionLedger) -> None:
        """Salesforce answered a call: the breaker's count of consecutive failures restarts (once a session)."""
        if self._breaker is not None and not ledger.salesforce_answered:
            self._breaker.call_succeeded()
        ledger.salesforce_answered = True

    def trip(self, ledger: SessionLedger, reason: BreakerReason, message: str) -> None:
        """Salesforce cannot take writes: open the breaker, so the queue is no longer received from."""
        if self._breaker is not None:
            self._breaker.trip(reason, message)
            ledger.breaker_open = True

    def failed(self, ledger: SessionLedger, changes: Sequence[IncomingChange], exc: SalesforceError) -> None:
        """A whole call failed: its changes wait (or, for a request Salesforce refuses outright, are parked)."""
        if isinstance(exc, SalesforceRequestError) and _refuses_every_call(exc):
            # Not about these records: every call would be refused the same way until an operator acts, so the
            # breaker stops the sync and the changes wait; parked, they would count as settled and a sweep of Zuora
            # would never send them again.
            logger.error("Salesforce refused the call itself; changes wait on the queue", extra={"error": str(exc)})
            self.trip(ledger, BreakerReason.SALESFORCE_REFUSED, exc.message)
            for incoming in changes:
                ledger.schedule_retry(incoming, self._recheck_seconds, RetryReason.SALESFORCE_REFUSED, exc.message)
            return
        if isinstance(exc, SalesforceRequestError):
            self.answered(ledger)  # Salesforce is up: it refused this request, not every request
            for incoming in changes:
                ledger.park(incoming, exc.status_code, exc.message)
            return
        if isinstance(exc, SalesforceConcurrencyLimitError):
            # Not the daily allocation: the org's long-running requests free up in seconds, so back off briefly
            # and leave the allocation guard (api_blocked, the recheck period) alone.
            ledger.concurrency_limited = True
            logger.warning("Salesforce concurrent long-running request limit reached; changes wait briefly")
            delay, code = 0, RetryReason.CONCURRENT_REQUEST_LIMIT
        elif isinstance(exc, SalesforceLimitExceededError):
            ledger.api_blocked = True
            logger.warning("Salesforce API allocation used up; changes wait on the queue")
            delay, code = self._recheck_seconds, RetryReason.REQUEST_LIMIT_EXCEEDED
            self.trip(ledger, BreakerReason.REQUEST_LIMIT_EXCEEDED, exc.message)
        elif isinstance(exc, SalesforceAuthError):
            logger.error("Salesforce refused our credentials; changes wait on the queue", extra={"error": str(exc)})
            delay, code = MAX_RETRY_DELAY_SECONDS, RetryReason.SALESFORCE_AUTH
            self.trip(ledger, BreakerReason.SALESFORCE_AUTH, exc.message)
        else:
            delay, code = 0, RetryReason.SALESFORCE_UNAVAILABLE
            if self._breaker is not None and self._breaker.call_failed(exc.message):
                ledger.breaker_open = True
        for incoming in changes:
            ledger.schedule_retry(
                incoming, delay or self._retry_policy.backoff(incoming.receive_count), code, exc.message
            )

    def not_sent(
        self,
        ledger: SessionLedger,
        changes: Sequence[IncomingChange],
        refusal: SalesforceError | None = None,
    ) -> None:
        """Changes not sent in this invocation wait on the queue; the half of a collection refused whole says so."""
        message = None
        if refusal is not None:
            # Never park a whole collection for one record's value: what was not isolated in time comes back.
            message = f"not isolated from a collection refused or failed whole before this invocation ended: {refusal}"
        for incoming in changes:
            if ledger.api_blocked:
                delay, reason = self._recheck_seconds, RetryReason.API_LIMIT_EXCEEDED
            elif ledger.breaker_open:
                delay, reason = self._recheck_seconds, RetryReason.BREAKER_OPEN
            elif ledger.concurrency_limited:
                delay, reason = self._retry_policy.backoff(incoming.receive_count), RetryReason.CONCURRENT_REQUEST_LIMIT
            else:
                delay, reason = 0, RetryReason.OUT_OF_TIME
            ledger.schedule_retry(incoming, delay, reason, message)


# Refusals of the call rather than of its records: the org's API switched off (403 ``API_DISABLED_FOR_ORG``, or
# any 403 but the request limits, which have their own errors), the API version retired (410 ``GONE``) or unknown
# (404 ``NOT_FOUND`` for the whole call), a token refused after its refresh (401).
_CALL_REFUSAL_STATUSES = frozenset({401, 403, 404, 410})


def _refuses_every_call(exc: SalesforceRequestError) -> bool:
    return exc.http_status in _CALL_REFUSAL_STATUSES
