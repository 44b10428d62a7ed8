"""The circuit breaker: when Salesforce cannot take writes, the sync function stops receiving from its queue.

Waiting on the queue by redelivery spends a receive per wait, and ``MaxReceiveCount`` receives send a change to the
dead-letter queue: a budget pause or an outage of more than a few minutes would fill the DLQ. So the breaker opens
(its state item records why, since when and by whom) and disables the sync function's SQS event source mapping:
the changes then wait on the queue without being received. A scheduled probe, once a minute, makes one cheap call
(``/limits``, counted in the API usage) and, when Salesforce answers and the usage is under the budget, closes the
breaker and re-enables the mapping; the backlog drains with newest-wins intact (the leases and versions of the
state table do not care how long a change waited). A breaker opened by hand (``MANUAL``) only ``resume`` closes.

Order of the two writes, so that a failure in between never leaves the queue unread for good:
- opening: state first, then the mapping; if disabling fails, the probe disables again while the state is open;
- closing: state first, then the mapping; if enabling fails, the state is opened again for the next probe.

The breaker never overrides an operator: the sync's trips and the probe's close are conditional writes (only if the
stored state is still the one they read), so a pause made meanwhile stands, and the probe reads the state again
after enabling the mapping and disables it once more if someone opened the breaker in between. Two concurrent
trips are harmless: the second finds the breaker open and keeps the first's reason and ``since``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from nrtsync.domain.models.salesforce import SalesforceError
from nrtsync.observability import logger
from nrtsync.ports.api_usage import ApiUsageStore
from nrtsync.ports.breaker import (
    BreakerReason,
    BreakerState,
    BreakerStore,
    BreakerUnavailableError,
    EventSourceBusyError,
    EventSourceSwitch,
)
from nrtsync.ports.salesforce import ApiUsage, SalesforcePort
from nrtsync.ports.state import StateUnavailableError

SYNC = "sync"
PROBE = "probe"


def is_probe_event(event: Mapping[str, Any]) -> bool:
    """True for the EventBridge schedule's event (the probe); an SQS batch has ``Records``."""
    return event.get("detail-type") == "Scheduled Event" and event.get("source") == "aws.events"


def pause(store: BreakerStore, switch: EventSourceSwitch, message: str, *, by: str, now: datetime) -> BreakerState:
    """Open the breaker by hand (reason MANUAL, which the probe never closes) and stop receiving; a breaker already
    open becomes MANUAL and keeps its ``since``. Raises BreakerUnavailableError (nothing is half-done silently: the
    state is written first, and a failed switch is reported to the operator, who runs it again)."""
    if not message.strip():
        raise ValueError("a pause needs a reason (message)")
    state = store.read()
    paused = BreakerState(
        is_open=True,
        reason=BreakerReason.MANUAL,
        message=message,
        since=state.since if state.is_open and state.since else now,
        by=by,
        updated_at=now,
    )
    store.write(paused)
    switch.set_enabled(False)
    return paused


def resume(store: BreakerStore, switch: EventSourceSwitch, message: str, *, by: str, now: datetime) -> BreakerState:
    """Close the breaker by hand, whatever opened it, and receive again (the probe reopens it within a minute of
    the next failed call if Salesforce still cannot take writes)."""
    if not message.strip():
        raise ValueError("a resume needs a reason (message)")
    closed = BreakerState(is_open=False, message=message, since=now, by=by, updated_at=now)
    store.write(closed)
    switch.set_enabled(True)
    return closed


@dataclass(frozen=True)
class ProbeResult:
    """What one probe run found and did; ``paused`` is the ``SyncPaused`` gauge it reports."""

    state: BreakerState
    action: str  # "idle" (closed), "closed" (it closed the breaker), "kept_open", "manual" (left to an operator)
    api_usage: ApiUsage | None = None
    error: str | None = None

    @property
    def paused(self) -> bool:
        return self.state.is_open

    def as_dict(self) -> dict[str, Any]:
        state = self.state
        return {
            "paused": state.is_open,
            "action": self.action,
            "reason": state.reason.value if state.reason else None,
            "since": state.since.isoformat() if state.since else None,
            "by": state.by,
            "api_usage_percent": round(self.api_usage.percent, 2) if self.api_usage else None,
            "error": self.error,
        }


class CircuitBreaker:
    """Opens on what the sync service reports, closes by the probe or an operator; see the module docstring."""

    def __init__(
        self,
        *,
        store: BreakerStore,
        switch: EventSourceSwitch,
        salesforce: SalesforcePort,
        usage_store: ApiUsageStore,
        failure_threshold: int,
        budget_percent: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._switch = switch
        self._salesforce = salesforce
        self._usage_store = usage_store
        self._threshold = failure_threshold
        self._budget_percent = budget_percent
        self._clock = clock

    # -- what the sync service asks and reports ------------------------------------------------------------

    def current(self) -> BreakerState:
        """The stored state; unreadable reads as closed (the sync then meets Salesforce's own answer)."""
        try:
            return self._store.read()
        except BreakerUnavailableError:
            logger.warning("breaker state unreadable; treated as closed")
            return BreakerState(is_open=False)

    def trip(self, reason: BreakerReason, message: str, *, by: str = SYNC) -> BreakerState:
        """Open the breaker (unless it is open already: its first reason and ``since`` stay) and stop receiving."""
        state = self.current()
        if state.is_open:
            return state
        now = self._clock()
        opened = BreakerState(
            is_open=True, reason=reason, message=message, since=now, by=by, updated_at=now, failures=state.failures
        )
        try:
            written = self._store.write(opened, expected=state)
        except BreakerUnavailableError:
            logger.error("breaker not opened: its state could not be written", extra={"reason": reason.value})
            return state
        if not written:
            # Someone opened it between our read and our write (an operator's pause, another trip): theirs stands.
            state = self.current()
            logger.info("breaker opened meanwhile; its reason stays", extra={"reason": str(state.reason)})
            if state.is_open:
                self._set_mapping(enabled=False)
            return state
        logger.error("circuit breaker opened; the sync stops receiving", extra={"reason": reason.value, "by": by})
        self._set_mapping(enabled=False)
        return opened

    def call_failed(self, message: str) -> bool:
        """One more consecutive failed Salesforce call; opens the breaker at the threshold. True when it opened."""
        try:
            count = self._store.count_failure(self._clock())
        except BreakerUnavailableError:
            return False
        if count < self._threshold:
            return False
        self.trip(BreakerReason.SALESFORCE_UNAVAILABLE, f"{count} consecutive failed Salesforce calls; last: {message}")
        return True

    def call_succeeded(self) -> None:
        """Salesforce answered: the consecutive failures start again from 0."""
        try:
            self._store.reset_failures()
        except BreakerUnavailableError:
            logger.warning("breaker failure count not reset")

    # -- operators -----------------------------------------------------------------------------------------

    def pause(self, message: str, *, by: str) -> BreakerState:
        """Open by hand; see ``pause``."""
        return pause(self._store, self._switch, message, by=by, now=self._clock())

    def resume(self, message: str, *, by: str) -> BreakerState:
        """Close by hand; see ``resume``."""
        return resume(self._store, self._switch, message, by=by, now=self._clock())

    # -- the probe -----------------------------------------------------------------------------------------

    def probe(self, *, deadline: float) -> ProbeResult:
        """One scheduled run: nothing when closed; when open, one ``/limits`` call and, if it allows, close."""
        state = self.current()
        if not state.is_open:
            return ProbeResult(state, "idle")
        if state.reason is BreakerReason.MANUAL:
            self._set_mapping(enabled=False)  # re-asserted: a mapping enabled by hand is disabled again
            return ProbeResult(state, "manual")
        try:
            usage = self._salesforce.fetch_api_usage(deadline=deadline)
        except SalesforceError as exc:
            self._set_mapping(enabled=False)
            return ProbeResult(state, "kept_open", error=f"{type(exc).__name__}: {exc.message}")
        try:
            self._usage_store.save_api_usage(usage)  # the other containers' budget guards read it
        except StateUnavailableError:
            logger.warning("API usage not saved")
        if usage.percent >= self._budget_percent:
            self._set_mapping(enabled=False)
            return ProbeResult(state, "kept_open", api_usage=usage, error="API usage at or over the budget")
        return self._close(state, usage)

    def _close(self, state: BreakerState, usage: ApiUsage) -> ProbeResult:
        now = self._clock()
        closed = BreakerState(
            is_open=False,
            message=f"probe: Salesforce answered after {state.reason}",
            since=now,
            by=PROBE,
            updated_at=now,
        )
        try:
            written = self._store.write(closed, expected=state)
        except BreakerUnavailableError as exc:
            return ProbeResult(state, "kept_open", api_usage=usage, error=str(exc))
        if not written:
            return self._changed_meanwhile(usage)
        if not self._set_mapping(enabled=True):
            # Closed but not receiving would stall silently: open again so the next probe tries once more.
            reopened = replace(state, updated_at=now)
            try:
                self._store.write(reopened, expected=closed)
            except BreakerUnavailableError:
                logger.error("breaker closed but the mapping is still disabled; enable it by hand (nrtsync resume)")
            return ProbeResult(reopened, "kept_open", api_usage=usage, error="the event source mapping not enabled")
        after = self.current()
        if after.is_open:
            # Paused (or tripped) between our close and our enable: the mapping goes back to what they asked for.
            self._set_mapping(enabled=False)
            return self._changed_meanwhile(usage, after)
        logger.info("circuit breaker closed; the sync receives again", extra={"was": state.reason})
        return ProbeResult(closed, "closed", api_usage=usage)

    def _changed_meanwhile(self, usage: ApiUsage, state: BreakerState | None = None) -> ProbeResult:
        state = state or self.current()
        logger.info("the breaker changed while the probe ran; the probe leaves it", extra={"by": state.by})
        action = "manual" if state.reason is BreakerReason.MANUAL else "kept_open" if state.is_open else "idle"
        return ProbeResult(state, action, api_usage=usage)

    def _set_mapping(self, *, enabled: bool) -> bool:
        try:
            self._switch.set_enabled(enabled)
        except EventSourceBusyError as exc:
            logger.warning("event source mapping still changing state; asked again later", extra={"error": str(exc)})
            return False
        except BreakerUnavailableError as exc:
            logger.error("event source mapping not changed", extra={"enabled": enabled, "error": str(exc)})
            return False
        return True
