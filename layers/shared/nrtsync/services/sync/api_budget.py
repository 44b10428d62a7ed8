"""The API budget guard: the sync stops calling Salesforce while the org's daily allocation is nearly used up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from nrtsync.domain.models.salesforce import SalesforceRetryableError
from nrtsync.observability import logger
from nrtsync.ports.api_usage import ApiUsageStore
from nrtsync.ports.salesforce import ApiUsage, SalesforcePort
from nrtsync.ports.state import StateUnavailableError
from nrtsync.services.sync.settings import SyncSettings


class ApiBudgetGuard:
    """Reads the newest usage this container saw or any invocation saved; rechecks ``/limits`` once the reading
    is older than the recheck period, so a new day's allocation is noticed without writing anything."""

    def __init__(
        self,
        settings: SyncSettings,
        *,
        salesforce: SalesforcePort,
        state: ApiUsageStore,
        clock: Callable[[], datetime],
    ) -> None:
        self._budget_percent = settings.api_usage_budget_percent
        self._warn_percent = settings.api_usage_warn_percent
        self._recheck_seconds = settings.api_usage_recheck_seconds
        self._salesforce = salesforce
        self._state = state
        self._clock = clock

    def allows(self, deadline: float) -> bool:
        """True when the latest usage is under the budget (or unknown); an allocation of 0 is used up."""
        usage = self._latest()
        if usage is None or usage.percent < self._budget_percent:
            return True
        age = (self._clock() - usage.observed_at).total_seconds()
        if age < self._recheck_seconds:
            return False
        try:
            fresh = self._salesforce.fetch_api_usage(deadline=deadline)
        except SalesforceRetryableError:
            return False
        return fresh.percent < self._budget_percent

    def remember(self, usage: ApiUsage) -> None:
        """Save this session's reading for the other invocations and the metrics function; warn when it is high."""
        if usage.percent >= self._warn_percent:
            logger.warning(
                "Salesforce API usage is high",
                extra={"api_used": usage.used, "api_limit": usage.limit, "api_usage_percent": round(usage.percent, 2)},
            )
        try:
            self._state.save_api_usage(usage)
        except StateUnavailableError:
            logger.warning("API usage not saved")

    def _latest(self) -> ApiUsage | None:
        local = self._salesforce.api_usage
        try:
            shared = self._state.api_usage()
        except StateUnavailableError:
            shared = None
        candidates = [u for u in (local, shared) if u is not None]
        return max(candidates, key=lambda u: u.observed_at) if candidates else None
