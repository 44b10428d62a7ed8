"""Closing a sync session: failures parked (or, if the failure list cannot take them, retried), parked versions
marked, the waiting changes handed back to the queue with their delays, the API usage remembered, the session and
its outcomes written to the history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nrtsync.domain.mapping import MappingConfig
from nrtsync.observability import logger
from nrtsync.ports.history import Failure, HistoryUnavailableError, HistoryWriter, SessionSummary
from nrtsync.ports.queue import RetryScheduler
from nrtsync.ports.salesforce import SalesforcePort
from nrtsync.services.sync.api_budget import ApiBudgetGuard
from nrtsync.services.sync.leases import RecordLeases
from nrtsync.services.sync.session_ledger import SessionLedger
from nrtsync.services.sync.settings import SyncSettings


@dataclass(frozen=True)
class ClosedSession:
    summary: SessionSummary
    failures: list[Failure]


class SessionCloser:
    """Settles a session's ledger with the failure list, the queue, the state table and the history."""

    def __init__(
        self,
        settings: SyncSettings,
        *,
        mapping: MappingConfig,
        salesforce: SalesforcePort,
        history: HistoryWriter,
        retries: RetryScheduler,
        leases: RecordLeases,
        budget: ApiBudgetGuard,
    ) -> None:
        self._retry_delay_seconds = settings.retry_delay_seconds
        self._mapping = mapping
        self._salesforce = salesforce
        self._history = history
        self._retries = retries
        self._leases = leases
        self._budget = budget

    def close(
        self, ledger: SessionLedger, *, started_at: datetime, records_in: int, api_calls_before: int
    ) -> ClosedSession:
        failures = list(ledger.failures)
        not_parked = self._history.park_failures(failures) if failures else []
        ledger.retry_unparked(not_parked, self._retry_delay_seconds)
        unparked = set(not_parked)
        self._leases.mark_parked([f for f in failures if f not in unparked and f.object_type in self._mapping.objects])
        for delay, handles in ledger.retries_by_delay().items():
            self._retries.delay(handles, delay)

        usage = self._salesforce.api_usage
        summary = ledger.summary(
            started_at=started_at,
            records_in=records_in,
            api_calls=self._salesforce.api_calls - api_calls_before,
            api_usage=usage,
        )
        if usage is not None:
            self._budget.remember(usage)
        try:
            self._history.write_session(summary, ledger.outcomes)
        except HistoryUnavailableError as exc:
            # The changes themselves are safe (written or back on the queue); only their history is short.
            logger.error("sync history not fully written", extra={"error": str(exc)})
        return ClosedSession(summary, failures)
