"""The sync session: coalesce a batch, claim each record, upsert into (or delete from) Salesforce, account for
every change.

Every message in a batch ends in exactly one of three ways: acknowledged with an outcome in the history
(written, superseded, duplicate, stale, failed-and-parked), or handed back to SQS (waiting) with a short
visibility delay. Nothing is acknowledged that was neither written nor parked where an operator sees it.

A change has one name per stage: a Zuora ``Callout`` (ingest) becomes a ``QueuedChange`` (the queue message's
body); the sync function receives it as a ``QueueMessage``, reads it into an ``IncomingChange`` (the queued
change with its delivery: message id, receipt handle, receive count) and records a ``RecordOutcome`` for it.
The retry policy, the API budget guard and the session ledger live in their own modules.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo

from aws_lambda_powertools.utilities.parser.models import SqsModel
from pydantic import ValidationError

from nrtsync.domain.coalesce import IncomingChange, coalesce
from nrtsync.domain.inherit import kept_of, known_values, parents_to_read, with_inherited
from nrtsync.domain.mapping import MappingConfig, MappingError, build_record
from nrtsync.domain.models.callout import QueuedChange, record_key_of
from nrtsync.domain.models.salesforce import (
    GONE_CODES,
    CollectionDelete,
    CollectionUpsert,
    RecordResult,
    SalesforceAuthError,
    SalesforceConcurrencyLimitError,
    SalesforceError,
    SalesforceLimitExceededError,
    SalesforceRequestError,
)
from nrtsync.domain.outcomes import ErrorKind, Outcome, classify
from nrtsync.domain.versions import rekey
from nrtsync.observability import logger
from nrtsync.ports.breaker import BreakerReason
from nrtsync.ports.history import Failure, HistoryUnavailableError, HistoryWriter, RecordOutcome, SessionSummary
from nrtsync.ports.holds import HoldStore
from nrtsync.ports.queue import RetryScheduler
from nrtsync.ports.salesforce import MAX_COLLECTIONS_PER_COMPOSITE, SalesforcePort
from nrtsync.ports.state import Claim, ClaimStatus, StateUnavailableError, VersionStore
from nrtsync.services.breaker.service import CircuitBreaker, ProbeResult
from nrtsync.services.sync.api_budget import ApiBudgetGuard
from nrtsync.services.sync.holds import HELD_MESSAGE_PREFIX, accounts_to_read, linked_accounts, plan_holds
from nrtsync.services.sync.retry_policy import MAX_RETRY_DELAY_SECONDS, RetryPolicy
from nrtsync.services.sync.session_ledger import SessionLedger
from nrtsync.services.sync.settings import SyncSettings

SOBJECT_COLLECTION_MAX = 200
# Time kept back from the invocation's deadline for releasing leases and writing the history.
_FINISH_MARGIN_SECONDS = 5.0
_STATE_WORKERS = 16


@dataclass(frozen=True)
class QueueMessage:
    """One SQS message as the event source mapping delivers it."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1

    @classmethod
    def batch_from_sqs(cls, event: Mapping[str, Any]) -> list[QueueMessage]:
        """The messages of an SQS event; the bodies stay raw strings (``process`` validates each one)."""
        batch = SqsModel.model_validate(event)
        return [
            cls(
                message_id=record.messageId,
                receipt_handle=record.receiptHandle,
                body=str(record.body),
                receive_count=int(record.attributes.ApproximateReceiveCount),
            )
            for record in batch.Records
        ]


@dataclass
class SyncResult:
    """What the handler returns to Lambda, and what the session did."""

    retry_message_ids: list[str]
    session: SessionSummary
    outcomes: list[RecordOutcome]
    failures: list[Failure] = field(default_factory=list)

    def batch_item_failures(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.retry_message_ids]}


@dataclass(frozen=True)
class _Chunk:
    """Up to 200 claimed changes of one object type: one sObject Collections upsert, or (``delete``) one
    sObject Collections delete whose records are ``{"Id": <Salesforce Id>}``."""

    object_type: str
    pairs: list[tuple[IncomingChange, dict[str, Any]]]
    refusal: SalesforceRequestError | None = None  # set on a half of a collection Salesforce refused whole
    delete: bool = False

    @property
    def changes(self) -> list[IncomingChange]:
        return [incoming for incoming, _ in self.pairs]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for _, record in self.pairs]


def _parallel[T, R](fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    # DynamoDB round trips dominate a session; boto3 clients are thread-safe, so overlap them.
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(_STATE_WORKERS, len(items))) as pool:
        return list(pool.map(fn, items))


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._mapping = mapping
        self._salesforce = salesforce
        self._state = state
        self._history = history
        self._retries = retries
        self._clock = clock
        self._monotonic = monotonic
        self._retry_policy = RetryPolicy(settings.retry_delay_seconds, jitter=jitter)
        self._budget = ApiBudgetGuard(settings, salesforce=salesforce, state=state, clock=clock)
        self._breaker = breaker
        self._holds = holds  # None: accounts without a CRM link are sent (and refused) like any change
        self._tenant_zone = ZoneInfo(settings.tenant_time_zone)

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._breaker

    def probe(self, *, remaining_seconds: float) -> ProbeResult | None:
        """The breaker's scheduled probe (None when this service has no breaker)."""
        if self._breaker is None:
            return None
        deadline = self._monotonic() + max(0.0, remaining_seconds - _FINISH_MARGIN_SECONDS)
        return self._breaker.probe(deadline=deadline)

    def process(self, messages: Sequence[QueueMessage], *, remaining_seconds: float) -> SyncResult:
        """Process one batch; ``remaining_seconds`` is the invocation's time left."""
        started_at = self._clock()
        deadline = self._monotonic() + max(0.0, remaining_seconds - _FINISH_MARGIN_SECONDS)
        ledger = SessionLedger(session_id=f"{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", clock=self._clock)
        api_calls_before = self._salesforce.api_calls

        batch = coalesce(self._read(messages, ledger))
        for loser, winner in batch.superseded:
            same = loser.change.content_hash == winner.change.content_hash
            ledger.record(loser, Outcome.DUPLICATE if same else Outcome.SUPERSEDED)

        if batch.winners:
            # A batch received just before the mapping stopped (or with the breaker opened by hand) waits too.
            if self._breaker is not None and self._breaker.current().is_open:
                ledger.breaker_open = True
                for incoming in batch.winners:
                    ledger.schedule_retry(incoming, self._settings.api_usage_recheck_seconds, "BREAKER_OPEN")
            elif self._budget.allows(deadline):
                self._sync_winners(ledger, batch.winners, deadline, remaining_seconds)
            else:
                ledger.api_blocked = True
                self._trip(ledger, BreakerReason.API_BUDGET_REACHED, "API usage at or over the budget")
                for incoming in batch.winners:
                    ledger.schedule_retry(incoming, self._settings.api_usage_recheck_seconds, "API_BUDGET_REACHED")

        return self._finish(ledger, started_at, len(messages), api_calls_before)

    # -- reading the messages ------------------------------------------------------------------------------

    def _read(self, messages: Sequence[QueueMessage], ledger: SessionLedger) -> list[IncomingChange]:
        """The incoming changes of the batch; a message that is no queued change is parked as it is."""
        incoming: list[IncomingChange] = []
        for message in messages:
            try:
                change = QueuedChange.model_validate_json(message.body)
            except ValidationError as exc:
                ledger.park_unreadable(
                    message.message_id, message.receipt_handle, message.body, message.receive_count, str(exc)
                )
                continue
            arrived = IncomingChange(message.message_id, message.receipt_handle, message.receive_count, change)
            try:
                # A subscription version is one record per subscription number (nrtsync.domain.versions).
                arrived = IncomingChange(
                    message.message_id, message.receipt_handle, message.receive_count, rekey(self._mapping, change)
                )
            except MappingError as exc:
                ledger.park(arrived, "MAPPING_ERROR", str(exc))
                continue
            incoming.append(arrived)
        return incoming

    # -- the write path ------------------------------------------------------------------------------------

    def _sync_winners(
        self,
        ledger: SessionLedger,
        winners: list[IncomingChange],
        deadline: float,
        remaining_seconds: float,
        *,
        releasing: bool = False,
    ) -> None:
        # The lease outlives this invocation: only after it expires may another writer touch the record.
        lease_until_ms = int((time.time() + remaining_seconds + 60) * 1000)

        def claim(incoming: IncomingChange) -> tuple[IncomingChange, Claim | None]:
            change = incoming.change
            try:
                result = self._state.claim(
                    change.record_key,
                    change.version,
                    change.content_hash,
                    owner=ledger.session_id,
                    lease_until_ms=lease_until_ms,
                )
            except StateUnavailableError:
                return incoming, None
            return incoming, result

        to_build: list[IncomingChange] = []
        for incoming, result in _parallel(claim, winners):
            status = result.status if result else None
            if status is None:
                ledger.schedule_retry(incoming, self._settings.retry_delay_seconds, "STATE_UNAVAILABLE")
            elif status is ClaimStatus.DUPLICATE:
                ledger.record(incoming, Outcome.DUPLICATE)
            elif status is ClaimStatus.STALE:
                ledger.record(incoming, Outcome.STALE)
            elif status is ClaimStatus.BUSY:
                delay = self._retry_policy.busy_delay(incoming.receive_count, result)
                ledger.schedule_retry(incoming, delay, "RECORD_BUSY")
            else:
                to_build.append(incoming)
        to_build = self._hold_unlinked(ledger, to_build, children_wait=not releasing)
        claimed = self._build_records(ledger, [i for i in to_build if not i.change.is_delete])
        doomed = self._delete_targets(ledger, [i for i in to_build if i.change.is_delete], deadline)

        # Deletes go first, children before parents (the reverse of the write order), then upserts, parents before
        # children: a child deleted and its parent upserted in one batch both succeed, and a parent's delete never
        # runs before its children's. A child upserted in the batch that deletes its parent fails as a child
        # whose parent is missing (retried, then parked), which is right: Zuora deleted the parent.
        chunks = _chunks(doomed, list(reversed(self._mapping.write_order())), delete=True)
        chunks += _chunks(claimed, self._mapping.write_order(), delete=False)
        # Up to five collections travel in one Composite call, executed in order: one API call.
        # The halves of a collection Salesforce refused whole go out next, ahead of the rest (isolation).
        pending = deque(chunks)
        while pending:
            batch = [pending.popleft() for _ in range(min(MAX_COLLECTIONS_PER_COMPOSITE, len(pending)))]
            pending.extendleft(reversed(self._upsert_chunks(ledger, batch, deadline)))
        if not releasing:
            self._release_held(ledger, linked_accounts(self._mapping, to_build), deadline, remaining_seconds)

    # -- billing accounts without a CRM link (nrtsync.services.sync.holds) ----------------------------------

    def _hold_unlinked(
        self, ledger: SessionLedger, changes: list[IncomingChange], *, children_wait: bool
    ) -> list[IncomingChange]:
        """The changes to send; accounts without a CRM link and the changes of their children are held."""
        if self._holds is None or not changes:
            return changes
        unlinked, parents = accounts_to_read(self._mapping, changes)
        try:
            links = self._state.kept_values(unlinked) if unlinked else {}
            held = self._holds.held_accounts(parents | unlinked) if children_wait and (parents or unlinked) else set()
        except StateUnavailableError:
            for incoming in changes:
                ledger.schedule_retry(incoming, self._settings.retry_delay_seconds, "STATE_UNAVAILABLE")
            self._release(changes, ledger)
            return []
        plan = plan_holds(self._mapping, changes, links=links, held_accounts=held)
        for incoming in plan.kept_link:
            key = incoming.change.record_key
            logger.warning(f"{key}: a change cleared the billing account's CRM link; the link last written is kept")
        for account_key, incoming in plan.held:
            try:
                self._holds.hold(account_key, incoming.change)
            except StateUnavailableError:
                ledger.schedule_retry(incoming, self._settings.retry_delay_seconds, "STATE_UNAVAILABLE")
                continue
            ledger.record(incoming, Outcome.HELD, code="NO_CRM_LINK", message=f"waits for {account_key}'s CrmId")
        self._release([incoming for _, incoming in plan.held], ledger)
        return plan.send

    def _release_held(
        self, ledger: SessionLedger, accounts: set[str], deadline: float, remaining_seconds: float
    ) -> None:
        """Writes the changes held for the accounts just written with their link, in this session."""
        written = {o.change.record_key for o in ledger.outcomes if o.outcome is Outcome.WRITTEN}
        accounts &= written
        if self._holds is None or not accounts:
            return
        try:
            held = self._holds.held_changes(accounts)
        except StateUnavailableError:
            logger.warning("held changes not read; the account's next change releases them")
            return
        released = [
            IncomingChange(HELD_MESSAGE_PREFIX + change.record_key, "", 1, change)
            for changes in held.values()
            for change in changes
        ]
        first = len(ledger.outcomes)
        self._sync_winners(ledger, released, deadline, remaining_seconds, releasing=True)
        settled = {
            (o.change.record_key, o.change.version)
            for o in ledger.outcomes[first:]
            if o.outcome in (Outcome.WRITTEN, Outcome.STALE, Outcome.DUPLICATE, Outcome.FAILED)
        }
        # A released change has no queue message: one that must wait stays held, for the account's next change.
        for message_id in [m for m in ledger.retries if m.startswith(HELD_MESSAGE_PREFIX)]:
            del ledger.retries[message_id]
        for account_key, changes in held.items():
            for change in changes:
                if (change.record_key, change.version) in settled:
                    try:
                        self._holds.drop(account_key, change)
                    except StateUnavailableError:
                        logger.warning("released change still held", extra={"record": change.record_key})

    def _build_records(
        self, ledger: SessionLedger, claimed: list[IncomingChange]
    ) -> list[tuple[IncomingChange, dict[str, Any]]]:
        """The Salesforce record of each claimed change, with the fields it inherits from its parent."""
        wanted = parents_to_read(self._mapping, (i.change for i in claimed))
        try:
            stored = self._state.kept_values(wanted) if wanted else {}
        except StateUnavailableError:
            # Writing without the inherited field would lose it for this change: those wait instead.
            blocked = [i for i in claimed if parents_to_read(self._mapping, [i.change])]
            for incoming in blocked:
                ledger.schedule_retry(incoming, self._settings.retry_delay_seconds, "STATE_UNAVAILABLE")
            self._release(blocked, ledger)
            blocked_ids = {i.message_id for i in blocked}
            claimed, stored = [i for i in claimed if i.message_id not in blocked_ids], {}
        known = known_values(self._mapping, (i.change for i in claimed), stored)
        built: list[tuple[IncomingChange, dict[str, Any]]] = []
        for incoming in claimed:
            change = incoming.change
            try:
                fields = with_inherited(self._mapping, change, known)
                record = build_record(
                    self._mapping, change.object_type, change.record_id, fields, zone=self._tenant_zone
                )
            except MappingError as exc:
                ledger.park(incoming, "MAPPING_ERROR", str(exc))
                self._release([incoming], ledger)
                continue
            built.append((incoming, record))
        return built

    def _delete_targets(
        self, ledger: SessionLedger, deletes: list[IncomingChange], deadline: float
    ) -> list[tuple[IncomingChange, dict[str, Any]]]:
        """The Salesforce Id each claimed delete removes: the one the state table kept, else found by external ID
        (one API call per record, only for records this product never wrote). A record Salesforce does not have
        is done at once: its tombstone is committed without a call."""
        if not deletes:
            return []
        try:
            kept = self._state.salesforce_ids([i.change.record_key for i in deletes])
        except StateUnavailableError:
            for incoming in deletes:
                ledger.schedule_retry(incoming, self._settings.retry_delay_seconds, "STATE_UNAVAILABLE")
            self._release(deletes, ledger)
            return []
        targets: list[tuple[IncomingChange, dict[str, Any]]] = []
        for incoming in deletes:
            change = incoming.change
            salesforce_id = kept.get(change.record_key)
            if salesforce_id is None:
                if ledger.api_blocked or ledger.breaker_open or ledger.concurrency_limited:
                    self._retry_unsent(ledger, _Chunk(change.object_type, [(incoming, {})], delete=True))
                    self._release([incoming], ledger)
                    continue
                obj = self._mapping.objects[change.object_type]
                try:
                    salesforce_id = self._salesforce.find_id(
                        obj.sobject, obj.external_id_field, change.record_id, deadline=deadline
                    )
                except SalesforceError as exc:
                    self._call_failed(ledger, [incoming], exc)
                    self._release([incoming], ledger)
                    continue
                self._answered(ledger)
                if salesforce_id is None:
                    self._settle(ledger, [(incoming, RecordResult(success=True))], self._clock())
                    continue
            targets.append((incoming, {"Id": salesforce_id}))
        return targets

    def _upsert_chunks(self, ledger: SessionLedger, chunks: list[_Chunk], deadline: float) -> list[_Chunk]:
        """One API call for 1..5 collections; returns the halves of the collections refused whole, to send next."""
        everything = [incoming for chunk in chunks for incoming in chunk.changes]
        if ledger.api_blocked or ledger.breaker_open or ledger.concurrency_limited or self._monotonic() >= deadline:
            for chunk in chunks:
                self._retry_unsent(ledger, chunk)
            self._release(everything, ledger)
            return []
        requests = [self._request_of(chunk) for chunk in chunks]
        try:
            answers = self._salesforce.upsert_collections(requests, deadline=deadline)
        except SalesforceError as exc:
            self._call_failed(ledger, everything, exc)
            self._release(everything, ledger)
            return []
        self._answered(ledger)
        answered_at = self._clock()
        halves: list[_Chunk] = []
        for chunk, answer in zip(chunks, answers, strict=True):
            if _refused_whole(answer) and len(chunk.pairs) > 1:
                halves += _halves(chunk, answer)
            elif isinstance(answer, SalesforceError):
                self._call_failed(ledger, chunk.changes, answer)
                self._release(chunk.changes, ledger)
            elif len(answer) != len(chunk.changes):
                # Never guess outcomes for a whole batch: an answer we cannot pair with records is retried.
                for incoming in chunk.changes:
                    delay = self._retry_policy.backoff(incoming.receive_count)
                    ledger.schedule_retry(incoming, delay, "UNPAIRED_RESPONSE")
                self._release(chunk.changes, ledger)
            elif chunk.delete:
                results = [_deleted(result, record["Id"]) for result, record in zip(answer, chunk.records, strict=True)]
                self._settle(ledger, list(zip(chunk.changes, results, strict=True)), answered_at)
            else:
                self._settle(ledger, list(zip(chunk.changes, answer, strict=True)), answered_at)
        return halves

    def _request_of(self, chunk: _Chunk) -> CollectionUpsert | CollectionDelete:
        obj = self._mapping.objects[chunk.object_type]
        if chunk.delete:
            return CollectionDelete(sobject=obj.sobject, ids=[record["Id"] for record in chunk.records])
        return CollectionUpsert(sobject=obj.sobject, external_id_field=obj.external_id_field, records=chunk.records)

    def _retry_unsent(self, ledger: SessionLedger, chunk: _Chunk) -> None:
        """A collection not sent in this invocation waits on the queue; a half of a refused one says so."""
        message = None
        if chunk.refusal is not None:
            # Never park a whole collection for one record's value: what was not isolated in time comes back.
            message = f"not isolated from a collection refused whole before this invocation ended: {chunk.refusal}"
        for incoming in chunk.changes:
            if ledger.api_blocked:
                delay, reason = self._settings.api_usage_recheck_seconds, "API_LIMIT_EXCEEDED"
            elif ledger.breaker_open:
                delay, reason = self._settings.api_usage_recheck_seconds, "BREAKER_OPEN"
            elif ledger.concurrency_limited:
                delay, reason = self._retry_policy.backoff(incoming.receive_count), "CONCURRENT_REQUEST_LIMIT"
            else:
                delay, reason = 0, "OUT_OF_TIME"
            ledger.schedule_retry(incoming, delay, reason, message)

    def _call_failed(self, ledger: SessionLedger, changes: list[IncomingChange], exc: SalesforceError) -> None:
        """A whole call failed: its changes wait (or, for a request Salesforce refuses outright, are parked)."""
        if isinstance(exc, SalesforceRequestError):
            self._answered(ledger)  # Salesforce is up: it refused this request, not every request
            for incoming in changes:
                ledger.park(incoming, exc.status_code, exc.message)
            return
        if isinstance(exc, SalesforceConcurrencyLimitError):
            # Not the daily allocation: the org's long-running requests free up in seconds, so back off briefly
            # and leave the allocation guard (api_blocked, the recheck period) alone.
            ledger.concurrency_limited = True
            logger.warning("Salesforce concurrent long-running request limit reached; changes wait briefly")
            delay, code = 0, "CONCURRENT_REQUEST_LIMIT"
        elif isinstance(exc, SalesforceLimitExceededError):
            ledger.api_blocked = True
            logger.warning("Salesforce API allocation used up; changes wait on the queue")
            delay, code = self._settings.api_usage_recheck_seconds, "REQUEST_LIMIT_EXCEEDED"
            self._trip(ledger, BreakerReason.REQUEST_LIMIT_EXCEEDED, exc.message)
        elif isinstance(exc, SalesforceAuthError):
            logger.error("Salesforce refused our credentials; changes wait on the queue", extra={"error": str(exc)})
            delay, code = MAX_RETRY_DELAY_SECONDS, "SALESFORCE_AUTH"
            self._trip(ledger, BreakerReason.SALESFORCE_AUTH, exc.message)
        else:
            delay, code = 0, "SALESFORCE_UNAVAILABLE"
            if self._breaker is not None and self._breaker.call_failed(exc.message):
                ledger.breaker_open = True
        for incoming in changes:
            ledger.schedule_retry(
                incoming, delay or self._retry_policy.backoff(incoming.receive_count), code, exc.message
            )

    def _trip(self, ledger: SessionLedger, reason: BreakerReason, message: str) -> None:
        """Salesforce cannot take writes: open the breaker, so the queue is no longer received from."""
        if self._breaker is not None:
            self._breaker.trip(reason, message)
            ledger.breaker_open = True

    def _answered(self, ledger: SessionLedger) -> None:
        """Salesforce answered a call: the breaker's count of consecutive failures restarts (once a session)."""
        if self._breaker is not None and not ledger.salesforce_answered:
            self._breaker.call_succeeded()
        ledger.salesforce_answered = True

    def _settle(
        self, ledger: SessionLedger, pairs: list[tuple[IncomingChange, RecordResult]], answered_at: datetime
    ) -> None:
        def commit(pair: tuple[IncomingChange, RecordResult]) -> bool:
            incoming, result = pair
            change = incoming.change
            try:
                return self._state.commit(
                    change.record_key,
                    change.version,
                    change.content_hash,
                    owner=ledger.session_id,
                    salesforce_id=result.salesforce_id,
                    kept=None if change.is_delete else kept_of(self._mapping, change),
                    deleted=change.is_delete,
                )
            except StateUnavailableError:
                return False

        written = [(incoming, result) for incoming, result in pairs if result.success]
        for (incoming, result), committed in zip(written, _parallel(commit, written), strict=True):
            # Uncommitted means an older redelivery could later look newer than what is stored; writing
            # the same version again on retry is harmless, so the change goes back to the queue.
            if not committed:
                logger.warning("written but not recorded; will rewrite", extra={"record": incoming.change.record_key})
                ledger.schedule_retry(incoming, self._settings.retry_delay_seconds, "STATE_UNAVAILABLE")
            else:
                ledger.record(incoming, Outcome.WRITTEN, at=answered_at, salesforce_id=result.salesforce_id)

        refused = [(incoming, result) for incoming, result in pairs if not result.success]
        for incoming, result in refused:
            errors = [(e.status_code, e.message) for e in result.errors]
            code = errors[0][0] if errors else "UNKNOWN_ERROR"
            message = "; ".join(f"{c}: {m}" for c, m in errors) or "Salesforce gave no error detail"
            kind = classify(errors)
            tries = incoming.receive_count
            if kind is ErrorKind.PARENT_MISSING and tries >= self._settings.parent_wait_max_tries:
                ledger.park(incoming, code, f"parent still missing after {tries} tries: {message}")
            elif kind is ErrorKind.PERMANENT:
                ledger.park(incoming, code, message)
            else:
                ledger.schedule_retry(incoming, self._retry_policy.backoff(tries), code, message)
        self._release([incoming for incoming, _ in refused], ledger)

    def _release(self, changes: Sequence[IncomingChange], ledger: SessionLedger) -> None:
        def release(incoming: IncomingChange) -> None:
            try:
                self._state.release(incoming.change.record_key, owner=ledger.session_id)
            except StateUnavailableError:
                # The lease expires by itself; until then the record's next change waits.
                logger.warning("lease not released", extra={"record": incoming.change.record_key})

        _parallel(release, list(changes))

    # -- closing the session -------------------------------------------------------------------------------

    def _mark_parked(self, parked: Sequence[Failure]) -> None:
        def mark(failure: Failure) -> None:
            try:
                self._state.mark_parked(record_key_of(failure.object_type, failure.record_id), failure.version)
            except StateUnavailableError:
                # Only a sweep of Zuora reads it: at worst it queues the change again and it is parked again.
                logger.warning("parked version not recorded", extra={"record": failure.record_id})

        _parallel(mark, parked)

    def _finish(
        self, ledger: SessionLedger, started_at: datetime, records_in: int, api_calls_before: int
    ) -> SyncResult:
        failures = list(ledger.failures)
        not_parked = self._history.park_failures(failures) if failures else []
        ledger.retry_unparked(not_parked, self._settings.retry_delay_seconds)
        unparked = set(not_parked)
        self._mark_parked([f for f in failures if f not in unparked and f.object_type in self._mapping.objects])
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
        return SyncResult(
            retry_message_ids=list(ledger.retries),
            session=summary,
            outcomes=ledger.outcomes,
            failures=failures,
        )


def _refused_whole(answer: list[RecordResult] | SalesforceError) -> TypeGuard[SalesforceRequestError]:
    """Salesforce refused the collection as a whole with 400 (e.g. JSON_PARSER_ERROR: one value it cannot
    deserialize into its field's type), so its records have no results of their own."""
    return isinstance(answer, SalesforceRequestError) and answer.http_status == 400


def _halves(chunk: _Chunk, refusal: SalesforceRequestError) -> list[_Chunk]:
    """Bisection: a refused collection's records go again in two halves, so the good ones are written and the bad
    record ends alone and fails with Salesforce's code. One bad record in n costs about log2(n) extra calls (the
    two halves of each level share one Composite call); if every record is bad, 2n - 2 more collections go out,
    five per call. The deadline bounds it: what is not isolated in time waits (``_retry_unsent``)."""
    middle = len(chunk.pairs) // 2
    return [
        _Chunk(chunk.object_type, chunk.pairs[:middle], refusal, delete=chunk.delete),
        _Chunk(chunk.object_type, chunk.pairs[middle:], refusal, delete=chunk.delete),
    ]


def _chunks(pairs: list[tuple[IncomingChange, dict[str, Any]]], order: list[str], *, delete: bool) -> list[_Chunk]:
    """The collections of ``pairs``: per object type in ``order``, up to 200 records each."""
    by_object: dict[str, list[tuple[IncomingChange, dict[str, Any]]]] = defaultdict(list)
    for incoming, record in pairs:
        by_object[incoming.change.object_type].append((incoming, record))
    chunks: list[_Chunk] = []
    for object_type in order:
        group = by_object.get(object_type, [])
        chunks += [
            _Chunk(object_type, group[start : start + SOBJECT_COLLECTION_MAX], delete=delete)
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
