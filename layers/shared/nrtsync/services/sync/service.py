"""The sync session: coalesce a batch, claim each record, upsert into (or delete from) Salesforce, account for
every change.

Every message in a batch ends in exactly one of three ways: acknowledged with an outcome in the history
(written, superseded, duplicate, stale, failed-and-parked), or handed back to SQS (waiting) with a short
visibility delay. Nothing is acknowledged that was neither written nor parked where an operator sees it.

``SyncService`` runs the session; each step has its own module: reading the messages (``messages``), the state
table's claims, commits and releases (``leases``), the records to send (``records``), the Composite calls and
their bisection (``composite``), what an answer or a failure means for the breaker and the waiting changes
(``call_outcomes``), settling per-record answers (``settle``), closing the session (``closing``), two changes of
one second (``same_second``); beside them the retry policy, the API budget guard and the session ledger.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nrtsync.domain.coalesce import IncomingChange, coalesce
from nrtsync.domain.mapping import MappingConfig, MappingError
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.outcomes import Outcome, ParkReason, RetryReason
from nrtsync.domain.versions import rekey
from nrtsync.observability import logger
from nrtsync.ports.breaker import BreakerReason
from nrtsync.ports.history import Failure, HistoryWriter, RecordOutcome, SessionSummary
from nrtsync.ports.holds import HoldStore
from nrtsync.ports.queue import MAX_DELAY_SECONDS, ChangeQueue, RetryScheduler
from nrtsync.ports.salesforce import SalesforcePort
from nrtsync.ports.state import ClaimStatus, StateUnavailableError, VersionStore
from nrtsync.ports.zuora import ZuoraPort
from nrtsync.services.breaker.service import CircuitBreaker, ProbeResult
from nrtsync.services.sync.api_budget import ApiBudgetGuard
from nrtsync.services.sync.call_outcomes import CallOutcomes
from nrtsync.services.sync.closing import SessionCloser
from nrtsync.services.sync.composite import CollectionSender
from nrtsync.services.sync.holds import (
    HELD_MESSAGE_PREFIX,
    accounts_to_read,
    linked_accounts,
    linked_keys,
    plan_holds,
)
from nrtsync.services.sync.leases import RecordLeases
from nrtsync.services.sync.messages import QueueMessage, read_changes
from nrtsync.services.sync.records import DeleteTargets, RecordBuilder
from nrtsync.services.sync.retry_policy import RetryPolicy
from nrtsync.services.sync.same_second import SameSecondChanges
from nrtsync.services.sync.session_ledger import SessionLedger
from nrtsync.services.sync.settings import SyncSettings
from nrtsync.services.sync.settle import Settler

__all__ = ["QueueMessage", "SyncResult", "SyncService"]

# Time kept back from the invocation's deadline for releasing leases and writing the history.
_FINISH_MARGIN_SECONDS = 5.0
# What a released held change may become for it to leave the hold (a failure: once parked, see _drop_parked).
_SETTLED = (Outcome.WRITTEN, Outcome.STALE, Outcome.DUPLICATE)
# A lease outlives the invocation by this much: only after it expires may another writer touch the record.
_LEASE_MARGIN_SECONDS = 60


@dataclass
class SyncResult:
    """What the session did; ``as_dict`` is what the handler returns to Lambda (the messages to retry)."""

    retry_message_ids: list[str]
    session: SessionSummary
    outcomes: list[RecordOutcome]
    failures: list[Failure] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.retry_message_ids]}


class SyncService:
    """Turns one batch of queued changes into Salesforce upserts, newest version always winning."""

    def __init__(
        self,
        settings: SyncSettings,
        *,
        mapping: MappingConfig,
        salesforce: SalesforcePort,
        state: VersionStore,
        history: HistoryWriter,
        retries: RetryScheduler,
        breaker: CircuitBreaker | None = None,
        holds: HoldStore | None = None,
        queue: ChangeQueue | None = None,
        zuora: ZuoraPort | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._salesforce = salesforce
        self._clock = clock
        self._monotonic = monotonic
        self._breaker = breaker
        self._mapping = mapping
        self._state = state
        self._holds = holds  # None: accounts without a CRM link are sent (and refused) like any change
        self._queue = queue  # None: a released change that must wait stays held (see _requeue_released)
        retry_policy = RetryPolicy(settings.retry_delay_seconds, jitter=jitter)
        self._retry_policy = retry_policy
        self._budget = ApiBudgetGuard(settings, salesforce=salesforce, state=state, clock=clock)
        self._leases = RecordLeases(state, mapping)
        self._same_second = SameSecondChanges(mapping=mapping, leases=self._leases, zuora=zuora)
        self._calls = CallOutcomes(settings, breaker=breaker, retry_policy=retry_policy)
        settler = Settler(settings, leases=self._leases, retry_policy=retry_policy)
        self._records = RecordBuilder(settings, mapping=mapping, state=state, leases=self._leases)
        self._deletes = DeleteTargets(
            settings,
            mapping=mapping,
            state=state,
            salesforce=salesforce,
            leases=self._leases,
            calls=self._calls,
            settler=settler,
            clock=clock,
        )
        self._sender = CollectionSender(
            mapping=mapping,
            salesforce=salesforce,
            leases=self._leases,
            calls=self._calls,
            settler=settler,
            retry_policy=retry_policy,
            clock=clock,
            monotonic=monotonic,
        )
        self._closer = SessionCloser(
            settings,
            mapping=mapping,
            salesforce=salesforce,
            history=history,
            retries=retries,
            leases=self._leases,
            budget=self._budget,
        )

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._breaker

    def probe(self, *, deadline: float) -> ProbeResult | None:
        """The breaker's scheduled probe (None when this service has no breaker); ``deadline`` is the
        invocation's, a ``time.monotonic()`` value."""
        if self._breaker is None:
            return None
        return self._breaker.probe(deadline=self._work_deadline(deadline))

    def run(self, messages: Sequence[QueueMessage], *, deadline: float) -> SyncResult:
        """Process one batch; ``deadline`` is the invocation's, a ``time.monotonic()`` value."""
        started_at = self._clock()
        remaining_seconds = max(0.0, deadline - self._monotonic())
        work_deadline = self._work_deadline(deadline)
        ledger = SessionLedger(session_id=f"{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", clock=self._clock)
        api_calls_before = self._salesforce.api_calls

        batch = coalesce(self._rekeyed(read_changes(messages, ledger), ledger))
        for loser, winner in batch.superseded:
            same = loser.change.content_hash == winner.change.content_hash
            ledger.record(loser, Outcome.DUPLICATE if same else Outcome.SUPERSEDED)

        if batch.winners:
            recheck = self._settings.api_usage_recheck_seconds
            # A batch received just before the mapping stopped (or with the breaker opened by hand) waits too.
            if self._breaker is not None and self._breaker.current().is_open:
                ledger.breaker_open = True
                for incoming in batch.winners:
                    ledger.schedule_retry(incoming, recheck, RetryReason.BREAKER_OPEN)
            elif self._budget.allows(work_deadline):
                lease_until_ms = int((time.time() + remaining_seconds + _LEASE_MARGIN_SECONDS) * 1000)
                self._sync_winners(ledger, batch.winners, work_deadline, lease_until_ms)
            else:
                ledger.api_blocked = True
                self._calls.trip(ledger, BreakerReason.API_BUDGET_REACHED, "API usage at or over the budget")
                for incoming in batch.winners:
                    ledger.schedule_retry(incoming, recheck, RetryReason.API_BUDGET_REACHED)

        closed = self._closer.close(
            ledger, started_at=started_at, records_in=len(messages), api_calls_before=api_calls_before
        )
        self._drop_parked(ledger)
        return SyncResult(
            retry_message_ids=list(ledger.retries),
            session=closed.summary,
            outcomes=ledger.outcomes,
            failures=closed.failures,
        )

    def _work_deadline(self, deadline: float) -> float:
        return max(self._monotonic(), deadline - _FINISH_MARGIN_SECONDS)

    def _rekeyed(self, changes: list[IncomingChange], ledger: SessionLedger) -> list[IncomingChange]:
        """A subscription version is one record per subscription number, or its own record deleted once no longer
        current (``nrtsync.domain.versions``)."""
        rekeyed: list[IncomingChange] = []
        for incoming in changes:
            try:
                change = rekey(self._mapping, incoming.change)
            except MappingError as exc:
                ledger.park(incoming, ParkReason.MAPPING_ERROR, str(exc))
                continue
            rekeyed.append(IncomingChange(incoming.message_id, incoming.receipt_handle, incoming.receive_count, change))
        return rekeyed

    def _sync_winners(
        self,
        ledger: SessionLedger,
        winners: list[IncomingChange],
        deadline: float,
        lease_until_ms: int,
        *,
        releasing: bool = False,
    ) -> None:
        claimed: list[IncomingChange] = []
        duplicates: list[IncomingChange] = []
        for incoming, claim in self._leases.claim(winners, owner=ledger.session_id, lease_until_ms=lease_until_ms):
            status = claim.status if claim else None
            if status is None:
                ledger.schedule_retry(incoming, self._settings.retry_delay_seconds, RetryReason.STATE_UNAVAILABLE)
            elif status is ClaimStatus.DUPLICATE:
                ledger.record(incoming, Outcome.DUPLICATE)
                duplicates.append(incoming)
            elif status is ClaimStatus.STALE:
                ledger.record(incoming, Outcome.STALE)
            elif status is ClaimStatus.BUSY:
                delay = self._retry_policy.busy_delay(incoming.receive_count, claim)
                ledger.schedule_retry(incoming, delay, RetryReason.RECORD_BUSY)
            else:
                claimed.append(incoming)
        claimed = self._same_second.resolve(claimed)
        claimed, leftovers = self._hold_unlinked(ledger, claimed, children_wait=not releasing)
        upserts = self._records.build(ledger, [i for i in claimed if not i.change.is_delete])
        deletes = self._deletes.find(ledger, [i for i in claimed if i.change.is_delete], deadline)
        self._sender.send(ledger, deletes, upserts, deadline)
        if not releasing:
            written = {o.change.record_key for o in ledger.outcomes if o.outcome is Outcome.WRITTEN}
            # An account written with its link now, or before (a duplicate of that change, or an account whose
            # children found changes still held): what it has held goes out.
            accounts = (
                (linked_accounts(self._mapping, claimed) & written)
                | linked_accounts(self._mapping, duplicates)
                | leftovers
            )
            self._release_held(ledger, accounts, deadline, lease_until_ms)

    # -- billing accounts without a CRM link (nrtsync.services.sync.holds) ----------------------------------

    def _hold_unlinked(
        self, ledger: SessionLedger, changes: list[IncomingChange], *, children_wait: bool
    ) -> tuple[list[IncomingChange], set[str]]:
        """(the changes to send, the accounts written with their link that still have changes held). Accounts
        without a CRM link and the changes of their children are held."""
        if self._holds is None or not changes:
            return changes, set()
        unlinked, parents = accounts_to_read(self._mapping, changes)
        try:
            links = self._state.kept_values(unlinked) if unlinked else {}
            held = self._holds.held_accounts(parents | unlinked) if children_wait and (parents or unlinked) else set()
            # Held changes of an account already written with its link were left behind (the queue or the state
            # table failed when they were released): a child of it waits for nothing.
            written_before = (held & parents) - unlinked
            leftovers = linked_keys(self._mapping, self._state.kept_values(written_before)) if written_before else set()
        except StateUnavailableError:
            for incoming in changes:
                ledger.schedule_retry(incoming, self._settings.retry_delay_seconds, RetryReason.STATE_UNAVAILABLE)
            self._leases.release(changes, owner=ledger.session_id)
            return [], set()
        plan = plan_holds(self._mapping, changes, links=links, held_accounts=held - leftovers)
        for incoming in plan.kept_link:
            key = incoming.change.record_key
            logger.warning(f"{key}: a change cleared the billing account's CRM link; the link last written is kept")
        for account_key, incoming in plan.held:
            try:
                self._holds.hold(account_key, incoming.change)
            except StateUnavailableError:
                ledger.schedule_retry(incoming, self._settings.retry_delay_seconds, RetryReason.STATE_UNAVAILABLE)
                continue
            ledger.record(incoming, Outcome.HELD, code="NO_CRM_LINK", message=f"waits for {account_key}'s CrmId")
        self._leases.release([incoming for _, incoming in plan.held], owner=ledger.session_id)
        return plan.send, leftovers

    def _release_held(self, ledger: SessionLedger, accounts: set[str], deadline: float, lease_until_ms: int) -> None:
        """Writes the changes held for ``accounts`` (each written with its link) in this session; one that must
        wait goes to the callout queue."""
        if self._holds is None or not accounts:
            return
        try:
            held = self._holds.held_changes(accounts)
        except StateUnavailableError:
            self._release_later(ledger, accounts)
            return
        released = {
            (change.record_key, change.version): IncomingChange(HELD_MESSAGE_PREFIX + change.record_key, "", 1, change)
            for changes in held.values()
            for change in changes
        }
        first = len(ledger.outcomes)
        self._sync_winners(ledger, list(released.values()), deadline, lease_until_ms, releasing=True)
        outcomes = {(o.change.record_key, o.change.version): o.outcome for o in ledger.outcomes[first:]}
        settled = {key for key, outcome in outcomes.items() if outcome in _SETTLED}
        settled |= self._requeue_released(ledger, released)
        for account_key, changes in held.items():
            for change in changes:
                key = (change.record_key, change.version)
                if outcomes.get(key) is Outcome.FAILED:
                    ledger.held_failed.append((account_key, change))
                elif key in settled:
                    self._drop(account_key, change)

    def _drop(self, account_key: str, change: QueuedChange) -> None:
        if self._holds is None:
            return
        try:
            self._holds.drop(account_key, change)
        except StateUnavailableError:
            logger.warning(f"{change.record_key}: released change still held", extra={"record": change.record_key})

    def _drop_parked(self, ledger: SessionLedger) -> None:
        """Released changes that failed leave the hold once on the failure list. One the list did not take has no
        queue message to come back on: it goes to the callout queue, to fail and be parked again, or stays held."""
        for account_key, change in ledger.held_failed:
            message_id = HELD_MESSAGE_PREFIX + change.record_key
            if message_id in ledger.retries:
                del ledger.retries[message_id]
                not_queued = (
                    self._queue.send_later([change], self._settings.retry_delay_seconds)
                    if self._queue is not None
                    else [change]
                )
                if not_queued:
                    logger.warning(
                        f"{change.record_key}: a released change that failed was neither parked nor queued; "
                        "it stays held",
                        extra={"record": change.record_key},
                    )
                    continue
            self._drop(account_key, change)

    def _requeue_released(
        self, ledger: SessionLedger, released: dict[tuple[str, str], IncomingChange]
    ) -> set[tuple[str, str]]:
        """Sends the released changes that must wait to the callout queue, each after its retry delay (SQS delays a
        message by 15 minutes at most); returns those the queue took. A released change has no queue message of
        its own to hand back: without this it would wait for the account's next change, which may never come."""
        waiting: dict[int, list[IncomingChange]] = {}
        by_message = {incoming.message_id: incoming for incoming in released.values()}
        for message_id in [m for m in ledger.retries if m.startswith(HELD_MESSAGE_PREFIX)]:
            _, delay = ledger.retries.pop(message_id)
            if message_id in by_message:
                waiting.setdefault(min(delay, MAX_DELAY_SECONDS), []).append(by_message[message_id])
        queued: set[tuple[str, str]] = set()
        for delay, incomings in waiting.items():
            changes = [incoming.change for incoming in incomings]
            not_queued = self._queue.send_later(changes, delay) if self._queue is not None else changes
            refused = {(c.record_key, c.version) for c in not_queued}
            for change in changes:
                key = (change.record_key, change.version)
                if key in refused:
                    logger.warning(
                        f"{change.record_key}: a released change that must wait was not queued; it stays held until "
                        "the next change of its billing account or of one of the account's records",
                        extra={"record": change.record_key},
                    )
                else:
                    queued.add(key)
        return queued

    def _release_later(self, ledger: SessionLedger, accounts: set[str]) -> None:
        """The held changes of ``accounts`` could not be read: the accounts' changes of this session go to the queue
        again, to come back as duplicates and release them then."""
        changes = [
            o.change
            for o in ledger.outcomes
            if o.change.record_key in accounts and o.outcome in (Outcome.WRITTEN, Outcome.DUPLICATE)
        ]
        unique = list({(c.record_key, c.version): c for c in changes}.values())
        delay = self._settings.retry_delay_seconds
        not_queued = self._queue.send_later(unique, delay) if self._queue is not None else unique
        again = {c.record_key for c in unique} - {c.record_key for c in not_queued}
        for key in sorted(accounts):
            if key in again:
                logger.warning(f"{key}: its held changes were not read; its change is queued again to release them")
            else:
                logger.warning(
                    f"{key}: its held changes were not read; they stay held until the next change of the account "
                    "or of one of its records",
                    extra={"record": key},
                )
