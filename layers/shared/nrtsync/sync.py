"""The sync session: coalesce a batch, claim each record, upsert into Salesforce, account for every change.

Every message in a batch ends in exactly one of three ways: acknowledged with an outcome in the history
(written, superseded, duplicate, stale, failed-and-parked), or handed back to SQS (waiting) with a short
visibility delay. Nothing is acknowledged that was neither written nor parked where an operator sees it.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from aws_lambda_powertools.utilities.parser.models import SqsModel
from pydantic import ValidationError

from nrtsync.coalesce import IncomingChange, coalesce
from nrtsync.inherit import kept_of, known_values, parents_to_read, with_inherited
from nrtsync.latency import percentiles
from nrtsync.mapping import MappingConfig, MappingError, build_record
from nrtsync.models.callout import QueuedChange
from nrtsync.models.salesforce import (
    CollectionUpsert,
    RecordResult,
    SalesforceAuthError,
    SalesforceConcurrencyLimitError,
    SalesforceError,
    SalesforceLimitExceededError,
    SalesforceRequestError,
    SalesforceRetryableError,
)
from nrtsync.observability import logger
from nrtsync.outcomes import ErrorKind, Outcome, classify
from nrtsync.ports.sync import (
    MAX_COLLECTIONS_PER_COMPOSITE,
    ApiUsage,
    Claim,
    ClaimStatus,
    Failure,
    HistoryUnavailableError,
    HistoryWriter,
    RecordOutcome,
    RetryScheduler,
    SalesforcePort,
    SessionSummary,
    StateUnavailableError,
    VersionStore,
)
from nrtsync.settings import SyncSettings

SOBJECT_COLLECTION_MAX = 200
MAX_RETRY_DELAY_SECONDS = 300
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
    """Up to 200 claimed changes of one object type: one sObject Collections upsert."""

    object_type: str
    pairs: list[tuple[IncomingChange, dict[str, Any]]]
    refusal: SalesforceRequestError | None = None  # set on a half of a collection Salesforce refused whole

    @property
    def items(self) -> list[IncomingChange]:
        return [item for item, _ in self.pairs]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for _, record in self.pairs]


@dataclass
class _Session:
    """The mutable bookkeeping of one invocation."""

    session_id: str
    outcomes: list[RecordOutcome] = field(default_factory=list)
    failures: dict[Failure, tuple[str, str]] = field(default_factory=dict)  # failure -> (message id, receipt)
    retry: dict[str, tuple[str, int]] = field(default_factory=dict)  # message id -> (receipt handle, delay s)
    api_blocked: bool = False
    concurrency_limited: bool = False


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._mapping = mapping
        self._sf = salesforce
        self._state = state
        self._history = history
        self._retries = retries
        self._clock = clock
        self._monotonic = monotonic
        self._jitter = jitter

    def process(self, messages: Sequence[QueueMessage], *, remaining_seconds: float) -> SyncResult:
        """Process one batch; ``remaining_seconds`` is the invocation's time left."""
        started_at = self._clock()
        deadline = self._monotonic() + max(0.0, remaining_seconds - _FINISH_MARGIN_SECONDS)
        session = _Session(session_id=f"{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}")
        api_calls_before = self._sf.api_calls

        incoming, malformed = self._parse(messages, session)
        batch = coalesce(incoming)
        for loser, winner in batch.superseded:
            same = loser.change.content_hash == winner.change.content_hash
            self._decide(session, loser, Outcome.DUPLICATE if same else Outcome.SUPERSEDED)

        if batch.winners:
            if self._api_budget_allows(deadline):
                self._sync_winners(session, batch.winners, deadline, remaining_seconds)
            else:
                session.api_blocked = True
                for item in batch.winners:
                    self._wait(session, item, self._settings.api_usage_recheck_seconds, "API_BUDGET_REACHED")

        return self._finish(session, started_at, len(messages), malformed, api_calls_before)

    # -- parsing -------------------------------------------------------------------------------------------

    def _parse(self, messages: Sequence[QueueMessage], session: _Session) -> tuple[list[IncomingChange], int]:
        incoming: list[IncomingChange] = []
        malformed = 0
        for message in messages:
            try:
                change = QueuedChange.model_validate_json(message.body)
            except ValidationError as exc:
                malformed += 1
                failure = Failure(
                    object_type="(unreadable)",
                    record_id=message.message_id,
                    version="0",
                    error_code="MALFORMED_MESSAGE",
                    error_message=str(exc)[:2_000],
                    failed_at=self._clock(),
                    session_id=session.session_id,
                    body=message.body[:350_000],
                    receive_count=message.receive_count,
                )
                session.failures[failure] = (message.message_id, message.receipt_handle)
                continue
            incoming.append(IncomingChange(message.message_id, message.receipt_handle, message.receive_count, change))
        return incoming, malformed

    # -- API usage guard -----------------------------------------------------------------------------------

    def _latest_usage(self) -> ApiUsage | None:
        seen = self._sf.api_usage
        local = seen
        try:
            shared = self._state.api_usage()
        except StateUnavailableError:
            shared = None
        candidates = [u for u in (local, shared) if u is not None]
        return max(candidates, key=lambda u: u.observed_at) if candidates else None

    def _api_budget_allows(self, deadline: float) -> bool:
        usage = self._latest_usage()
        budget = self._settings.api_usage_budget_percent
        if usage is None or usage.percent < budget:
            return True
        age = (self._clock() - usage.observed_at).total_seconds()
        if age < self._settings.api_usage_recheck_seconds:
            return False
        try:
            fresh = self._sf.fetch_api_usage(deadline=deadline)
        except SalesforceRetryableError:
            return False
        return fresh.percent < budget

    # -- the write path ------------------------------------------------------------------------------------

    def _sync_winners(
        self, session: _Session, winners: list[IncomingChange], deadline: float, remaining_seconds: float
    ) -> None:
        # The lease outlives this invocation: only after it expires may another writer touch the record.
        lease_until_ms = int((time.time() + remaining_seconds + 60) * 1000)

        def claim(item: IncomingChange) -> tuple[IncomingChange, Claim | None]:
            change = item.change
            try:
                result = self._state.claim(
                    change.record_key,
                    change.version,
                    change.content_hash,
                    owner=session.session_id,
                    lease_until_ms=lease_until_ms,
                )
            except StateUnavailableError:
                return item, None
            return item, result

        to_build: list[IncomingChange] = []
        for item, result in _parallel(claim, winners):
            status = result.status if result else None
            if status is None:
                self._wait(session, item, self._settings.retry_delay_seconds, "STATE_UNAVAILABLE")
            elif status is ClaimStatus.DUPLICATE:
                self._decide(session, item, Outcome.DUPLICATE)
            elif status is ClaimStatus.STALE:
                self._decide(session, item, Outcome.STALE)
            elif status is ClaimStatus.BUSY:
                self._wait(session, item, self._busy_delay(item, result), "RECORD_BUSY")
            else:
                to_build.append(item)
        claimed = self._build_records(session, to_build)

        by_object: dict[str, list[tuple[IncomingChange, dict[str, Any]]]] = defaultdict(list)
        for item, record in claimed:
            by_object[item.change.object_type].append((item, record))
        chunks: list[_Chunk] = []
        for object_type in self._mapping.write_order():  # parents before children
            group = by_object.get(object_type, [])
            chunks += [
                _Chunk(object_type, group[start : start + SOBJECT_COLLECTION_MAX])
                for start in range(0, len(group), SOBJECT_COLLECTION_MAX)
            ]
        # Up to five collections travel in one Composite call, executed in order: one API call, parents first.
        # The halves of a collection Salesforce refused whole go out next, ahead of the rest (isolation).
        pending = deque(chunks)
        while pending:
            batch = [pending.popleft() for _ in range(min(MAX_COLLECTIONS_PER_COMPOSITE, len(pending)))]
            pending.extendleft(reversed(self._upsert_chunks(session, batch, deadline)))

    def _build_records(
        self, session: _Session, items: list[IncomingChange]
    ) -> list[tuple[IncomingChange, dict[str, Any]]]:
        """The Salesforce record of each claimed change, with the fields it inherits from its parent."""
        wanted = parents_to_read(self._mapping, (i.change for i in items))
        try:
            stored = self._state.kept_values(wanted) if wanted else {}
        except StateUnavailableError:
            # Writing without the inherited field would lose it for this change: those wait instead.
            blocked = [i for i in items if parents_to_read(self._mapping, [i.change])]
            for item in blocked:
                self._wait(session, item, self._settings.retry_delay_seconds, "STATE_UNAVAILABLE")
            self._release(blocked, session)
            blocked_ids = {i.message_id for i in blocked}
            items, stored = [i for i in items if i.message_id not in blocked_ids], {}
        known = known_values(self._mapping, (i.change for i in items), stored)
        built: list[tuple[IncomingChange, dict[str, Any]]] = []
        for item in items:
            change = item.change
            try:
                fields = with_inherited(self._mapping, change, known)
                record = build_record(self._mapping, change.object_type, change.record_id, fields)
            except MappingError as exc:
                self._fail(session, item, "MAPPING_ERROR", str(exc))
                self._release([item], session)
                continue
            built.append((item, record))
        return built

    def _upsert_chunks(self, session: _Session, chunks: list[_Chunk], deadline: float) -> list[_Chunk]:
        """One API call for 1..5 collections; returns the halves of the collections refused whole, to send next."""
        everything = [item for chunk in chunks for item in chunk.items]
        if session.api_blocked or session.concurrency_limited or self._monotonic() >= deadline:
            for chunk in chunks:
                self._wait_unsent(session, chunk)
            self._release(everything, session)
            return []
        requests = []
        for chunk in chunks:
            obj = self._mapping.objects[chunk.object_type]
            requests.append(
                CollectionUpsert(sobject=obj.sobject, external_id_field=obj.external_id_field, records=chunk.records)
            )
        try:
            answers = self._sf.upsert_collections(requests, deadline=deadline)
        except SalesforceError as exc:
            self._call_failed(session, everything, exc)
            self._release(everything, session)
            return []
        answered_at = self._clock()
        halves: list[_Chunk] = []
        for chunk, answer in zip(chunks, answers, strict=True):
            if _refused_whole(answer) and len(chunk.pairs) > 1:
                halves += _halves(chunk, answer)
            elif isinstance(answer, SalesforceError):
                self._call_failed(session, chunk.items, answer)
                self._release(chunk.items, session)
            elif len(answer) != len(chunk.items):
                # Never guess outcomes for a whole batch: an answer we cannot pair with records is retried.
                for item in chunk.items:
                    self._wait(session, item, self._backoff(item.receive_count), "UNPAIRED_RESPONSE")
                self._release(chunk.items, session)
            else:
                self._settle(session, list(zip(chunk.items, answer, strict=True)), answered_at)
        return halves

    def _wait_unsent(self, session: _Session, chunk: _Chunk) -> None:
        """A collection not sent in this invocation waits on the queue; a half of a refused one says so."""
        message = None
        if chunk.refusal is not None:
            # Never park a whole collection for one record's value: what was not isolated in time comes back.
            message = f"not isolated from a collection refused whole before this invocation ended: {chunk.refusal}"
        for item in chunk.items:
            if session.api_blocked:
                delay, reason = self._settings.api_usage_recheck_seconds, "API_LIMIT_EXCEEDED"
            elif session.concurrency_limited:
                delay, reason = self._backoff(item.receive_count), "CONCURRENT_REQUEST_LIMIT"
            else:
                delay, reason = 0, "OUT_OF_TIME"
            self._wait(session, item, delay, reason, message)

    def _call_failed(self, session: _Session, items: list[IncomingChange], exc: SalesforceError) -> None:
        """A whole call failed: its records wait (or, for a request Salesforce refuses outright, fail)."""
        if isinstance(exc, SalesforceRequestError):
            for item in items:
                self._fail(session, item, exc.status_code, exc.message)
            return
        if isinstance(exc, SalesforceConcurrencyLimitError):
            # Not the daily allocation: the org's long-running requests free up in seconds, so back off briefly
            # and leave the allocation guard (api_blocked, the recheck period) alone.
            session.concurrency_limited = True
            logger.warning("Salesforce concurrent long-running request limit reached; changes wait briefly")
            delay, code = 0, "CONCURRENT_REQUEST_LIMIT"
        elif isinstance(exc, SalesforceLimitExceededError):
            session.api_blocked = True
            logger.warning("Salesforce API allocation used up; changes wait on the queue")
            delay, code = self._settings.api_usage_recheck_seconds, "REQUEST_LIMIT_EXCEEDED"
        elif isinstance(exc, SalesforceAuthError):
            logger.error("Salesforce refused our credentials; changes wait on the queue", extra={"error": str(exc)})
            delay, code = MAX_RETRY_DELAY_SECONDS, "SALESFORCE_AUTH"
        else:
            delay, code = 0, "SALESFORCE_UNAVAILABLE"
        for item in items:
            self._wait(session, item, delay or self._backoff(item.receive_count), code, exc.message)

    def _settle(
        self, session: _Session, pairs: list[tuple[IncomingChange, RecordResult]], answered_at: datetime
    ) -> None:
        def commit(pair: tuple[IncomingChange, RecordResult]) -> bool:
            item, result = pair
            change = item.change
            try:
                return self._state.commit(
                    change.record_key,
                    change.version,
                    change.content_hash,
                    owner=session.session_id,
                    salesforce_id=result.salesforce_id,
                    kept=kept_of(self._mapping, change),
                )
            except StateUnavailableError:
                return False

        written = [(item, result) for item, result in pairs if result.success]
        for (item, result), committed in zip(written, _parallel(commit, written), strict=True):
            # Uncommitted means an older redelivery could later look newer than what is stored; writing
            # the same version again on retry is harmless, so the change goes back to the queue.
            if not committed:
                logger.warning("written but not recorded; will rewrite", extra={"record": item.change.record_key})
                self._wait(session, item, self._settings.retry_delay_seconds, "STATE_UNAVAILABLE")
            else:
                self._decide(session, item, Outcome.WRITTEN, at=answered_at, salesforce_id=result.salesforce_id)

        refused = [(item, result) for item, result in pairs if not result.success]
        for item, result in refused:
            errors = [(e.status_code, e.message) for e in result.errors]
            code = errors[0][0] if errors else "UNKNOWN_ERROR"
            message = "; ".join(f"{c}: {m}" for c, m in errors) or "Salesforce gave no error detail"
            kind = classify(errors)
            if kind is ErrorKind.PARENT_MISSING and item.receive_count >= self._settings.parent_wait_max_tries:
                self._fail(session, item, code, f"parent still missing after {item.receive_count} tries: {message}")
            elif kind is ErrorKind.PERMANENT:
                self._fail(session, item, code, message)
            else:
                self._wait(session, item, self._backoff(item.receive_count), code, message)
        self._release([item for item, _ in refused], session)

    def _release(self, items: Sequence[IncomingChange], session: _Session) -> None:
        def release(item: IncomingChange) -> None:
            try:
                self._state.release(item.change.record_key, owner=session.session_id)
            except StateUnavailableError:
                # The lease expires by itself; until then the record's next change waits.
                logger.warning("lease not released", extra={"record": item.change.record_key})

        _parallel(release, list(items))

    # -- bookkeeping ---------------------------------------------------------------------------------------

    def _busy_delay(self, item: IncomingChange, claim: Claim | None) -> int:
        """Back off like any other wait, so the retries outlast the other writer's lease even when its owner
        died after Salesforce answered (a constant delay spent all the change's receives within the lease
        and sent it to the dead-letter queue while the older change came back and was written). Waiting
        past the lease's expiry gains nothing, so the delay stops there."""
        delay = self._backoff(item.receive_count)
        if claim is not None and claim.lease_until_ms is not None:
            until_expiry = math.ceil((claim.lease_until_ms - time.time() * 1000) / 1000) + 1
            delay = max(1, min(delay, until_expiry))
        return delay

    def _backoff(self, receive_count: int) -> int:
        base = self._settings.retry_delay_seconds * 2 ** max(0, receive_count - 1)
        return int(min(MAX_RETRY_DELAY_SECONDS, base * (1 + 0.2 * self._jitter())))

    def _decide(
        self,
        session: _Session,
        item: IncomingChange,
        outcome: Outcome,
        *,
        at: datetime | None = None,
        salesforce_id: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        session.outcomes.append(
            RecordOutcome(
                change=item.change,
                outcome=outcome,
                decided_at=at or self._clock(),
                salesforce_id=salesforce_id,
                error_code=code,
                error_message=message,
                receive_count=item.receive_count,
            )
        )

    def _wait(self, session: _Session, item: IncomingChange, delay: int, code: str, message: str | None = None) -> None:
        session.retry[item.message_id] = (item.receipt_handle, delay)
        self._decide(session, item, Outcome.WAITING, code=code, message=message)

    def _fail(self, session: _Session, item: IncomingChange, code: str, message: str) -> None:
        change = item.change
        failure = Failure(
            object_type=change.object_type,
            record_id=change.record_id,
            version=change.version,
            error_code=code,
            error_message=message,
            failed_at=self._clock(),
            session_id=session.session_id,
            body=change.model_dump_json(),
            receive_count=item.receive_count,
        )
        session.failures[failure] = (item.message_id, item.receipt_handle)
        self._decide(session, item, Outcome.FAILED, code=code, message=message)

    def _finish(
        self, session: _Session, started_at: datetime, records_in: int, malformed: int, api_calls_before: int
    ) -> SyncResult:
        failures = list(session.failures)
        not_parked = self._history.park_failures(failures) if failures else []
        for failure in not_parked:
            # A failure we could not park is not acknowledged: the message comes back and is parked later.
            message_id, receipt_handle = session.failures[failure]
            session.retry[message_id] = (receipt_handle, self._settings.retry_delay_seconds)

        by_delay: dict[int, list[str]] = defaultdict(list)
        for handle, delay in session.retry.values():
            by_delay[delay].append(handle)
        for delay, handles in by_delay.items():
            self._retries.delay(handles, delay)

        usage = self._sf.api_usage
        summary = SessionSummary(
            session_id=session.session_id,
            started_at=started_at,
            ended_at=self._clock(),
            records_in=records_in,
            malformed=malformed,
            api_calls=self._sf.api_calls - api_calls_before,
            api_usage_percent=round(usage.percent, 2) if usage else None,
        )
        for outcome in session.outcomes:
            summary.counts[outcome.outcome] = summary.counts.get(outcome.outcome, 0) + 1
        latencies = percentiles([o.sync_ms for o in session.outcomes if o.outcome is Outcome.WRITTEN], (50, 90))
        summary.latency_p50_ms, summary.latency_p90_ms = latencies[50], latencies[90]
        summary.counts[Outcome.FAILED] = summary.counts.get(Outcome.FAILED, 0) + malformed

        if usage is not None:
            self._remember_usage(usage)
        try:
            self._history.write_session(summary, session.outcomes)
        except HistoryUnavailableError as exc:
            # The changes themselves are safe (written or back on the queue); only their history is short.
            logger.error("sync history not fully written", extra={"error": str(exc)})
        return SyncResult(
            retry_message_ids=list(session.retry),
            session=summary,
            outcomes=session.outcomes,
            failures=failures,
        )

    def _remember_usage(self, usage: ApiUsage) -> None:
        if usage.percent >= self._settings.api_usage_warn_percent:
            logger.warning(
                "Salesforce API usage is high",
                extra={"api_used": usage.used, "api_limit": usage.limit, "api_usage_percent": round(usage.percent, 2)},
            )
        try:
            self._state.save_api_usage(usage)
        except StateUnavailableError:
            logger.warning("API usage not saved")


def _refused_whole(answer: list[RecordResult] | SalesforceError) -> TypeGuard[SalesforceRequestError]:
    """Salesforce refused the collection as a whole with 400 (e.g. JSON_PARSER_ERROR: one value it cannot
    deserialize into its field's type), so its records have no results of their own."""
    return isinstance(answer, SalesforceRequestError) and answer.http_status == 400


def _halves(chunk: _Chunk, refusal: SalesforceRequestError) -> list[_Chunk]:
    """Bisection: a refused collection's records go again in two halves, so the good ones are written and the bad
    record ends alone and fails with Salesforce's code. One bad record in n costs about log2(n) extra calls (the
    two halves of each level share one Composite call); if every record is bad, 2n - 2 more collections go out,
    five per call. The deadline bounds it: what is not isolated in time waits (``_wait_unsent``)."""
    middle = len(chunk.pairs) // 2
    return [
        _Chunk(chunk.object_type, chunk.pairs[:middle], refusal),
        _Chunk(chunk.object_type, chunk.pairs[middle:], refusal),
    ]
