"""The fault drill: thousands of Zuora changes through the local pipeline while everything around it misbehaves.

    .venv/bin/python -m nrtsync_local.faults                     # the short drill (1,000 changes, ~1.5 min)
    .venv/bin/python -m nrtsync_local.faults --changes 20000     # the soak (``make soak``)

What it does (docs/RELIABILITY.md has the why): a seeded generator makes versions of a few hundred Zuora
accounts and subscriptions and delivers them at a steady rate, part over HTTP through the local API Gateway
front (the real ingest handler), the rest straight onto the callout queue as ingest would queue them. Some
changes are re-delivered (same notification id, same body), some are delivered after a newer version of the
same record, a few are permanently invalid (a Name the org's validation rule refuses, a Balance that is not a
number). Meanwhile, on a fixed schedule, the Salesforce stand-in answers 503s, refuses rows with
``UNABLE_TO_LOCK_ROW``, slows down, expires the session and runs out of API allocation for a while; and the
sync handler is killed twice: once after Salesforce answered but before the state commit and the SQS delete
(its leases stay behind until they expire), once after it returned but before the poller deleted the batch.

At the end it checks that every record in the stand-in holds the newest version sent, that every change has a
final outcome in the sync history, that the failure list holds exactly the invalid changes and the DLQ
nothing, and it prints the figures. ``run_drill`` returns a ``DrillReport``; the exit status is 0 if the report has
no problems, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import heapq
import itertools
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import requests

from nrtsync_local.front import Handler
from nrtsync_local.stack import LocalStack
from nrtsync_local.template import load_template, resource

if TYPE_CHECKING:
    from nrtsync.ports.sync import SalesforcePort

log = logging.getLogger("nrtsync_local.faults")

ACCOUNTS = "Zuora__CustomerAccount__c"
SUBSCRIPTIONS = "Zuora__Subscription__c"
EXTERNAL_ID = "Zuora__External_Id__c"
REFUSED_NAME = "Refused by the drill's validation rule"
UNCONVERTIBLE = "not-a-number"
VALIDATION_CODE = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
MAPPING_CODE = "MAPPING_ERROR"
FINAL_OUTCOMES = frozenset({"written", "superseded", "duplicate", "stale", "failed"})
_TICK_SECONDS = 0.05
_HTTP_WORKERS = 4
_HTTP_ATTEMPTS = 6
_SQS_BATCH = 10


class DrillFailedError(RuntimeError):
    """The drill found changes lost, records not at their newest version, or unexpected failures."""


class DrillTimeoutError(DrillFailedError):
    """The pipeline did not drain in time; the message says what was still on the queue."""


class SimulatedKillError(Exception):
    """Raised where the drill kills the sync handler; the poller treats it as Lambda treats a crash."""


@dataclass(frozen=True)
class DrillConfig:
    """The drill's knobs. The defaults are the short drill; ``changes`` scales it into a soak."""

    changes: int = 1_000
    records: int = 250
    rate_per_second: float = 14.0
    http_share: float = 0.35
    """Part of the changes sent over HTTP through the API Gateway front (ingest); the rest go onto the queue."""
    redeliver_share: float = 0.06
    reorder_share: float = 0.06
    seed: int = 20_260_501
    sync_timeout_seconds: int = 10
    """The sync function's timeout for the drill (template: 60): a killed invocation's leases last this + 60 s."""
    visibility_timeout_seconds: int = 10
    """The callout queue's visibility timeout for the drill (template: 360): how soon a killed batch comes back."""
    retry_delay_seconds: int = 1
    api_recheck_seconds: int = 2
    batch_window_seconds: float = 1.0
    cycle_seconds: float = 100.0
    """The fault schedule repeats every cycle while changes are being sent (one cycle in the short drill)."""
    max_queue_depth: int = 200
    """Generation pauses while more messages than this are visible (moto's SQS slows with depth)."""
    drain_timeout_seconds: float = 120.0
    quarantine_lead_seconds: float = 4.0
    """New changes to records a killed invocation still leases wait until this long before the lease ends."""


@dataclass(frozen=True)
class Change:
    """One Zuora change as the drill made it: one notification, delivered once or more."""

    seq: int
    object_type: str
    record_id: str
    version: int
    updated: datetime
    fields: dict[str, str]
    notification_id: str
    refusal: str | None = None
    """The error code this change must end with on the failure list; None for a valid change."""

    @property
    def key(self) -> tuple[str, str]:
        return self.object_type, self.record_id

    @property
    def record_key(self) -> str:
        return f"{self.object_type}#{self.record_id}"

    def callout_body(self) -> bytes:
        """The body Zuora's callout template renders (README: the canonical callout)."""
        return json.dumps(
            {
                "eventType": f"Nrtsync{self.object_type}Changed",
                "objectType": self.object_type,
                "id": self.record_id,
                "updatedDate": self.updated.isoformat(timespec="milliseconds"),
                "fields": self.fields,
            }
        ).encode()

    def queued_body(self, received_at: datetime) -> str:
        """The queue message ingest would send for this change, received now."""
        from nrtsync.models.callout import QueuedChange  # noqa: PLC0415 - the layer, imported once the stack runs

        return QueuedChange(
            object_type=self.object_type,
            record_id=self.record_id,
            updated_date=self.updated,
            event_type=f"Nrtsync{self.object_type}Changed",
            fields=dict(self.fields),
            notification_id=self.notification_id,
            request_id=str(uuid.uuid4()),
            received_at=received_at,
        ).model_dump_json()


@dataclass(frozen=True)
class Delivery:
    change: Change
    http: bool
    redelivery: bool = False


@dataclass
class Kill:
    kind: str  # "after-answer" or "after-return"
    at: float  # seconds since the drill started sending
    messages: int
    leases: dict[str, int] = field(default_factory=dict)  # record key -> lease_until (epoch ms), after-answer only


class KillSwitch:
    """Armed by the drill's schedule, taken by the next sync invocation big enough to be worth killing."""

    def __init__(self, min_records: int = 10) -> None:
        self._lock = threading.Lock()
        self._min = min_records
        self._after_answer = False
        self._after_return = False

    def arm(self, kind: str) -> None:
        with self._lock:
            if kind == "after-answer":
                self._after_answer = True
            else:
                self._after_return = True

    def take(self, kind: str, size: int) -> bool:
        with self._lock:
            if size < self._min:
                return False
            if kind == "after-answer" and self._after_answer:
                self._after_answer = False
                return True
            if kind == "after-return" and self._after_return:
                self._after_return = False
                return True
            return False


class KillAfterAnswer:
    """A Salesforce port that, when the switch is armed, lets Salesforce write and then dies.

    It wraps the product's port whatever its write methods are called (``upsert``, ``upsert_collections``):
    the call goes through, Salesforce stores the records and answers, then ``SimulatedKillError`` leaves the
    sync service exactly as a killed container leaves it: the state table has neither the written version nor
    a released lease, and the SQS messages are not deleted.
    """

    _WRITES = frozenset({"upsert", "upsert_collections"})

    def __init__(self, inner: Any, switch: KillSwitch, on_kill: Callable[[str, int], None]) -> None:
        self._inner = inner
        self._switch = switch
        self._on_kill = on_kill

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in self._WRITES or not callable(attribute):
            return attribute

        def write_then_maybe_die(*args: Any, **kwargs: Any) -> Any:
            answer = attribute(*args, **kwargs)
            records = _count_results(answer)
            if self._switch.take("after-answer", records):
                self._on_kill(name, records)
                raise SimulatedKillError(f"drill: killed after Salesforce answered {name} for {records} records")
            return answer

        return write_then_maybe_die


def _count_results(answer: Any) -> int:
    """Records Salesforce answered for: a list of results, or a list of such lists (and errors)."""
    if not isinstance(answer, list):
        return 0
    return sum(len(part) if isinstance(part, list) else (0 if isinstance(part, Exception) else 1) for part in answer)


def drill_template(config: DrillConfig) -> dict[str, Any]:
    """template.yaml with the drill's sync timeout and queue visibility timeout (both much shorter)."""
    template = copy.deepcopy(load_template())
    resource(template, "SyncFunction")["Properties"]["Timeout"] = config.sync_timeout_seconds
    resource(template, "CalloutQueue")["Properties"]["VisibilityTimeout"] = config.visibility_timeout_seconds
    return template


@dataclass
class DrillReport:
    """The figures of one run and every problem found (empty when nothing was lost)."""

    figures: dict[str, Any]
    problems: list[str]
    waiting_by_reason: dict[str, int]
    kills: list[Kill]
    dead_letters: list[str] = field(default_factory=list)
    """Notification ids of the messages found in the DLQ."""

    def lines(self) -> list[str]:
        f = self.figures
        out = [
            "nrtsync fault drill",
            f"  changes sent            {f['changes_sent']} ({f['deliveries']} deliveries: {f['sent_http']} over HTTP, "
            f"{f['sent_queue']} onto the queue; {f['redeliveries']} re-deliveries, {f['reordered']} reordered, "
            f"{f['invalid_sent']} invalid)",
            f"  records                 {f['records']}",
            f"  written                 {f['written']}",
            f"  retried (waiting)       {f['waiting']}",
            f"  superseded              {f['superseded']}",
            f"  duplicates              {f['duplicates']}",
            f"  stale                   {f['stale']}",
            f"  failed                  {f['failed']}",
            f"  sync sessions           {f['sessions']} (+{f['handler_errors']} killed invocations)",
            f"  Salesforce API calls    {f['api_calls']} (stand-in count; {f['token_requests']} token requests, "
            f"{f['injected_faults']} injected faults)",
            f"  sending                 {f['send_seconds']:.1f} s",
            f"  time to drain           {f['drain_seconds']:.1f} s after the last send",
            f"  total                   {f['total_seconds']:.1f} s",
            "  waiting by reason       "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.waiting_by_reason.items())) or "none"),
            "  kills                   "
            + "; ".join(f"{k.kind} at {k.at:.1f} s ({k.messages} records, {len(k.leases)} leases)" for k in self.kills),
        ]
        verdict = "PASS" if not self.problems else f"FAIL ({len(self.problems)})"
        out.append("  result                  " + verdict)
        out += [f"    - {p}" for p in self.problems[:50]]
        return out


class _HideSimulatedKills(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedKillError))


class FaultDrill:
    """Drives one drill against a started ``LocalStack`` (see ``run_drill``, which builds one for it)."""

    def __init__(self, stack: LocalStack, config: DrillConfig, switch: KillSwitch) -> None:
        if stack.standin is None:
            raise ValueError("the fault drill needs the Salesforce stand-in, not a real org")
        self._stack = stack
        self._standin = stack.standin
        self._config = config
        self._switch = switch
        self._rng = random.Random(config.seed)  # noqa: S311 - a reproducible drill, not security
        self._sqs = stack.client("sqs")
        self._ddb = stack.client("dynamodb")
        self._lock = threading.Lock()
        self._started = 0.0
        self._changes: list[Change] = []
        self._next_version: dict[tuple[str, str], int] = defaultdict(int)
        self._last_updated: dict[tuple[str, str], datetime] = {}
        self._outbox: list[tuple[float, int, Delivery]] = []
        self._outbox_seq = itertools.count()
        self._direct: list[str] = []
        self._http_pool = ThreadPoolExecutor(max_workers=_HTTP_WORKERS, thread_name_prefix="drill-http")
        self._http_futures: list[Future[None]] = []
        self._local = threading.local()
        self._quarantine: dict[str, float] = {}  # record key -> monotonic time until which it gets no new change
        self._kills: list[Kill] = []
        self._counts: Counter[str] = Counter()
        self._fired: set[tuple[int, str]] = set()
        self._api_limit = 0
        self._problems: list[str] = []
        self._dead_letters: list[str] = []
        redrive = json.loads(
            self._sqs.get_queue_attributes(QueueUrl=stack.resources.queue_url, AttributeNames=["RedrivePolicy"])[
                "Attributes"
            ]["RedrivePolicy"]
        )
        self._max_receive_count = int(redrive["maxReceiveCount"])
        self._accounts = max(1, round(config.records * 2 / 3))
        self._records: list[tuple[str, str]] = [("Account", f"A{i:05d}") for i in range(self._accounts)] + [
            ("Subscription", f"S{i:05d}") for i in range(config.records - self._accounts)
        ]

    # --- the run ---------------------------------------------------------------------------------------------

    def run(self) -> DrillReport:
        config = self._config
        self._standin.set_faults(
            latency_ms=20,
            validation_rules=[{"field": "Name", "equals": REFUSED_NAME, "message": "Name refused by the drill"}],
        )
        self._api_limit = int(self._standin.set_faults()["api_limit"])
        self._started = time.monotonic()
        try:
            self._send_all()
        finally:
            self._http_pool.shutdown(wait=True)
        sent_at = time.monotonic()
        self._restore_org()
        try:
            self._stack.wait_until_drained(timeout=config.drain_timeout_seconds)
        except TimeoutError as exc:
            raise DrillTimeoutError(
                f"the pipeline did not drain within {config.drain_timeout_seconds:.0f} s after the last of "
                f"{len(self._changes)} changes was sent ({exc}); poller: {self._stack.poll_stats}"
            ) from exc
        drained_at = time.monotonic()
        return self._report(sent_at - self._started, drained_at - sent_at, drained_at - self._started)

    def _send_all(self) -> None:
        config = self._config
        last_depth_check, depth = 0.0, 0
        while True:
            now = time.monotonic()
            elapsed = now - self._started
            generating = len(self._changes) < config.changes
            if generating:
                self._fire_due_faults(elapsed)
            if now - last_depth_check >= 0.5:
                depth, last_depth_check = self._stack.queue_depth()["visible"], now
            if generating and depth <= config.max_queue_depth:
                due = min(config.changes, int(elapsed * config.rate_per_second) + 1)
                while len(self._changes) < due:
                    self._generate(now)
            self._release_due(now)
            self._flush_direct()
            self._http_futures = [f for f in self._http_futures if not f.done() or self._settle_http(f)]
            if not generating and not self._outbox and not self._direct and not self._http_futures:
                return
            time.sleep(_TICK_SECONDS)

    # --- traffic ---------------------------------------------------------------------------------------------

    def _pick_record(self, now: float) -> tuple[str, str]:
        with self._lock:
            for _ in range(20):
                key = self._rng.choice(self._records)
                if key[0] == "Subscription" and not self._next_version[("Account", self._parent_of(key[1]))]:
                    key = ("Account", self._parent_of(key[1]))  # Zuora has the account before its subscriptions
                if self._quarantine.get(f"{key[0]}#{key[1]}", 0.0) <= now:
                    return key
            return key  # all tried are quarantined: the outbox defers it anyway

    def _parent_of(self, subscription_id: str) -> str:
        return f"A{int(subscription_id[1:]) % self._accounts:05d}"

    def _new_change(self, key: tuple[str, str], *, refusal: str | None = None) -> Change:
        object_type, record_id = key
        self._next_version[key] += 1
        version = self._next_version[key]
        moment = datetime.now(UTC).replace(microsecond=datetime.now(UTC).microsecond // 1000 * 1000)
        previous = self._last_updated.get(key)
        if previous is not None and moment <= previous:
            moment = previous + timedelta(milliseconds=1)  # Zuora's updatedDate grows with every change
        self._last_updated[key] = moment
        if object_type == "Account":
            fields = {"Name": f"Account {record_id} v{version}", "Balance": str(version), "AccountNumber": record_id}
        else:
            parent = self._parent_of(record_id)
            fields = {"Name": f"Subscription {record_id} v{version}", "Version": str(version), "AccountId": parent}
        if refusal == VALIDATION_CODE:
            fields["Name"] = REFUSED_NAME
        elif refusal == MAPPING_CODE:
            fields["Balance"] = UNCONVERTIBLE
        change = Change(
            seq=len(self._changes),
            object_type=object_type,
            record_id=record_id,
            version=version,
            updated=moment,
            fields=fields,
            notification_id=f"drill-{uuid.UUID(int=self._rng.getrandbits(128))}",
            refusal=refusal,
        )
        self._changes.append(change)
        return change

    def _generate(self, now: float) -> None:
        config, rng = self._config, self._rng
        key = self._pick_record(now)
        first = self._new_change(key)
        if rng.random() < config.reorder_share and len(self._changes) < config.changes:
            # Zuora does not promise order: the newer version arrives first, this one seconds later (another batch).
            newer = self._new_change(key)
            self._schedule(now, Delivery(newer, http=rng.random() < config.http_share))
            self._schedule(now + rng.uniform(1.5, 6.0), Delivery(first, http=rng.random() < config.http_share))
            self._counts["reordered"] += 1
        else:
            self._schedule(now, Delivery(first, http=rng.random() < config.http_share))
        for change in self._changes[first.seq :]:
            if rng.random() < config.redeliver_share:
                # Zuora re-delivers: same notification id, same body, a little (or a lot) later.
                self._schedule(now + rng.uniform(0.2, 12.0), Delivery(change, http=rng.random() < 0.5, redelivery=True))

    def _send_invalid(self, now: float, code: str) -> None:
        """A change the org (or the mapping) refuses for good, to a record of its own, over HTTP (ingest takes it)."""
        record_id = f"BAD{self._counts['invalid_sent']:04d}"
        self._counts["invalid_sent"] += 1
        self._schedule(now, Delivery(self._new_change(("Account", record_id), refusal=code), http=True))

    def _schedule(self, due: float, delivery: Delivery) -> None:
        heapq.heappush(self._outbox, (due, next(self._outbox_seq), delivery))

    def _release_due(self, now: float) -> None:
        deferred: list[tuple[float, Delivery]] = []
        while self._outbox and self._outbox[0][0] <= now:
            _, _, delivery = heapq.heappop(self._outbox)
            with self._lock:
                until = self._quarantine.get(delivery.change.record_key, 0.0)
            if until > now:
                deferred.append((until, delivery))  # its record is leased by a killed invocation: later
                continue
            self._deliver(delivery)
        for due, delivery in deferred:
            self._schedule(due, delivery)

    def _deliver(self, delivery: Delivery) -> None:
        self._counts["deliveries"] += 1
        self._counts["redeliveries"] += delivery.redelivery
        if delivery.http:
            self._counts["sent_http"] += 1
            self._http_futures.append(self._http_pool.submit(self._post, delivery.change))
        else:
            self._counts["sent_queue"] += 1
            self._direct.append(delivery.change.queued_body(datetime.now(UTC)))

    def _flush_direct(self) -> None:
        while self._direct:
            chunk, self._direct = self._direct[:_SQS_BATCH], self._direct[_SQS_BATCH:]
            answer = self._sqs.send_message_batch(
                QueueUrl=self._stack.resources.queue_url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)],
            )
            failed = [chunk[int(entry["Id"])] for entry in answer.get("Failed", [])]
            if failed:
                self._direct = failed + self._direct
                return

    def _post(self, change: Change) -> None:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # 127.0.0.1: no proxy, whatever the shell says
            self._local.session = session
        answer = "no answer"
        for attempt in range(_HTTP_ATTEMPTS):
            if attempt:
                time.sleep(0.5)  # Zuora waits 30 minutes; the drill has less time
            try:
                response = session.post(
                    self._stack.callout_url,
                    data=change.callout_body(),
                    headers={
                        "Content-Type": "application/json",
                        "Zuora-Notification-Id": change.notification_id,
                        "Zuora-Request-Id": str(uuid.uuid4()),
                    },
                    auth=self._stack.callout_auth,
                    timeout=30,
                )
            except requests.RequestException as exc:
                answer = type(exc).__name__
                continue
            if response.status_code == 200:
                return
            answer = f"HTTP {response.status_code} {response.text[:200]}"
        raise DrillFailedError(f"ingest did not take {change.notification_id} in {_HTTP_ATTEMPTS} attempts: {answer}")

    def _settle_http(self, future: Future[None]) -> bool:
        """False (drop it from the pending list) once done; a callout ingest never took is a problem."""
        error = future.exception()
        if error is not None:
            self._problems.append(f"lost at the door: {error}")
        return False

    # --- faults ----------------------------------------------------------------------------------------------

    def _schedule_of_faults(self) -> list[tuple[float, str, Callable[[float], object]]]:
        sf = self._standin
        return [
            (
                1.0,
                "kill after Salesforce answered, before commit and delete",
                lambda _: self._switch.arm("after-answer"),
            ),
            (3.0, "kill after the handler returned, before the delete", lambda _: self._switch.arm("after-return")),
            (5.0, "latency spike 300 ms", lambda _: sf.set_faults(latency_ms=300)),
            (8.0, "three 503s (retried within the call)", lambda _: sf.set_faults(fail_next=[{"status": 503}] * 3)),
            (10.0, "invalid: validation rule", lambda now: self._send_invalid(now, VALIDATION_CODE)),
            (12.0, "latency back to 20 ms", lambda _: sf.set_faults(latency_ms=20)),
            (14.0, "row locks on 8% of rows", lambda _: sf.set_faults(row_lock={"rate": 0.08, "count": 40, "seed": 7})),
            (16.0, "invalid: unconvertible value", lambda now: self._send_invalid(now, MAPPING_CODE)),
            (20.0, "session expired", lambda _: sf.set_faults(expire_sessions=True)),
            (22.0, "invalid: validation rule", lambda now: self._send_invalid(now, VALIDATION_CODE)),
            (
                24.0,
                "six 503s (the call gives up; records wait)",
                lambda _: sf.set_faults(fail_next=[{"status": 503}] * 6),
            ),
            (28.0, "latency spike 1500 ms", lambda _: sf.set_faults(latency_ms=1_500)),
            (31.0, "latency back to 20 ms", lambda _: sf.set_faults(latency_ms=20)),
            (34.0, "row lock on three records", lambda _: self._lock_rows()),
            (38.0, "invalid: validation rule", lambda now: self._send_invalid(now, VALIDATION_CODE)),
            (40.0, "invalid: unconvertible value", lambda now: self._send_invalid(now, MAPPING_CODE)),
            (42.0, "session expired and the token endpoint 503s once", lambda _: self._expire_with_token_fault()),
        ]

    def _fire_due_faults(self, elapsed: float) -> None:
        cycle = int(elapsed // self._config.cycle_seconds)
        offset = elapsed - cycle * self._config.cycle_seconds
        now = time.monotonic()
        for at, label, action in self._schedule_of_faults():
            if offset >= at and (cycle, f"{at}:{label}") not in self._fired:
                self._fired.add((cycle, f"{at}:{label}"))
                log.info("drill %.1f s: %s", elapsed, label)
                action(now)
        # The API allocation runs out for a while, then frees up. It falls between two retries of the killed
        # batch (which waits on its leases with doubling delays), so that batch is not retried faster than that.
        kill = next(
            (k for k in self._kills if k.kind == "after-answer" and k.at >= cycle * self._config.cycle_seconds), None
        )
        start = (kill.at + 32.0 - cycle * self._config.cycle_seconds) if kill else 32.0
        if offset >= start and (cycle, "api-out") not in self._fired:
            self._fired.add((cycle, "api-out"))
            log.info("drill %.1f s: API allocation used up", elapsed)
            self._standin.set_faults(api_used=self._api_limit)
        if offset >= start + 4.0 and (cycle, "api-back") not in self._fired and (cycle, "api-out") in self._fired:
            self._fired.add((cycle, "api-back"))
            self._api_limit += 100_000
            log.info("drill %.1f s: API allocation raised to %d", elapsed, self._api_limit)
            self._standin.set_faults(api_limit=self._api_limit)

    def _lock_rows(self) -> None:
        ids = [record_id for object_type, record_id in self._records[:3] if object_type == "Account"]
        self._standin.set_faults(row_lock={"external_ids": ids, "count": 6})

    def _expire_with_token_fault(self) -> None:
        self._standin.set_faults(expire_sessions=True, fail_next=[{"endpoint": "token", "status": 503}])

    def _restore_org(self) -> None:
        """After the last send: whatever is still scheduled would only slow the drain down."""
        self._standin.set_faults(latency_ms=20, row_lock=None, fail_next=[])
        labels = {label for _, label in self._fired}
        if "api-out" in labels and "api-back" not in labels:
            self._api_limit += 100_000
            self._standin.set_faults(api_limit=self._api_limit)

    def on_kill_after_answer(self, sobject: str, records: int) -> None:
        """Called inside the killed invocation (it holds the invoke lock): whatever is leased now is its lease."""
        leases: dict[str, int] = {}
        now_ms = int(time.time() * 1000)
        for item in self._scan_state():
            until = int(item.get("lease_until", {}).get("N", "0"))
            if until > now_ms:
                leases[item["pk"]["S"]] = until
        now = time.monotonic()
        with self._lock:
            for key, until in leases.items():
                quarantine = now + (until - now_ms) / 1000 - self._config.quarantine_lead_seconds
                self._quarantine[key] = max(self._quarantine.get(key, 0.0), quarantine)
            self._kills.append(Kill("after-answer", now - self._started, records, leases))
        log.info("drill: killed after Salesforce answered %d %s records; %d leases left", records, sobject, len(leases))

    def on_kill_after_return(self, messages: int) -> None:
        with self._lock:
            self._kills.append(Kill("after-return", time.monotonic() - self._started, messages))
        log.info("drill: killed after the handler returned (%d messages not deleted)", messages)

    def _scan_state(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self._stack.resources.state_table}
        while True:
            page = self._ddb.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- the verdict -----------------------------------------------------------------------------------------

    def _report(self, send_seconds: float, drain_seconds: float, total_seconds: float) -> DrillReport:
        problems = list(self._problems)
        problems += self._check_records()
        trails = self._trails()
        problems += self._check_every_change_settled(trails)
        problems += self._check_failures_and_queues()
        waiting_by_reason: Counter[str] = Counter()
        for items in trails.values():
            for item in items:
                if item.get("status") == "waiting":
                    waiting_by_reason[str(item.get("error_code", "?"))] += 1
        sessions = self._stack.operations().sessions(since=timedelta(hours=6), limit=1_000_000)
        totals: Counter[str] = Counter()
        for session in sessions:
            for key in ("written", "superseded", "duplicates", "stale_skipped", "waiting", "failed", "api_calls"):
                totals[key] += int(session.get(key) or 0)
        stats = self._standin.stats()
        poll = self._stack.poll_stats
        figures: dict[str, Any] = {
            "changes_sent": len(self._changes),
            "deliveries": self._counts["deliveries"],
            "sent_http": self._counts["sent_http"],
            "sent_queue": self._counts["sent_queue"],
            "redeliveries": self._counts["redeliveries"],
            "reordered": self._counts["reordered"],
            "invalid_sent": self._counts["invalid_sent"],
            "records": len({c.key for c in self._changes}),
            "written": totals["written"],
            "waiting": totals["waiting"],
            "superseded": totals["superseded"],
            "duplicates": totals["duplicates"],
            "stale": totals["stale_skipped"],
            "failed": totals["failed"],
            "sessions": len(sessions),
            "handler_errors": poll.handler_errors,
            "sync_invocations": poll.invocations,
            "api_calls": int(stats["api_calls"]),
            "api_calls_by_sessions": totals["api_calls"],
            "token_requests": int(stats["token_requests"]),
            "injected_faults": int(stats["injected_faults"]),
            "send_seconds": round(send_seconds, 1),
            "drain_seconds": round(drain_seconds, 1),
            "total_seconds": round(total_seconds, 1),
        }
        return DrillReport(
            figures,
            problems,
            dict(waiting_by_reason),
            list(self._kills),
            dead_letters=self._dead_letters,
        )

    def _newest(self) -> dict[tuple[str, str], Change]:
        newest: dict[tuple[str, str], Change] = {}
        for change in self._changes:
            if change.refusal is None and (change.key not in newest or change.updated > newest[change.key].updated):
                newest[change.key] = change
        return newest

    def _check_records(self) -> list[str]:
        problems: list[str] = []
        stored = {
            "Account": {r[EXTERNAL_ID]: r for r in self._standin.records(ACCOUNTS)},
            "Subscription": {r[EXTERNAL_ID]: r for r in self._standin.records(SUBSCRIPTIONS)},
        }
        newest = self._newest()
        for (object_type, record_id), change in sorted(newest.items()):
            record = stored[object_type].get(record_id)
            if record is None:
                problems.append(f"missing in Salesforce: {object_type} {record_id} (newest v{change.version})")
                continue
            if object_type == "Account":
                got = (record.get("Name"), _number(record.get("Zuora__Balance__c")))
            else:
                got = (record.get("Name"), _number(record.get("Zuora__Version__c")))
                parent = stored["Account"].get(change.fields["AccountId"])
                if parent is None or record.get("Zuora__CustomerAccount__c") != parent["Id"]:
                    problems.append(f"{object_type} {record_id} is not linked to account {change.fields['AccountId']}")
            want = (change.fields["Name"], float(change.version))
            if got != want:
                problems.append(f"not the newest version: {object_type} {record_id} holds {got}, newest sent {want}")
        expected = set(newest)
        for object_type, records in stored.items():
            for record_id in records:
                if (object_type, record_id) not in expected:
                    problems.append(f"in Salesforce but never validly sent: {object_type} {record_id}")
        return problems

    def _check_failures_and_queues(self) -> list[str]:
        problems: list[str] = []
        operations = self._stack.operations()
        listed = Counter(
            (str(f["object_type"]), str(f["record_id"]), str(f["error_code"])) for f in operations.failures()
        )
        wanted = Counter((c.object_type, c.record_id, str(c.refusal)) for c in self._changes if c.refusal)
        for key in sorted(set(listed) | set(wanted)):
            if listed[key] != wanted[key]:
                problems.append(f"failure list holds {listed[key]} x {key}, expected {wanted[key]}")
        self._dead_letters = self._read_dead_letters()
        if self._dead_letters:
            problems.append(
                f"DLQ: {len(self._dead_letters)} messages (expected none: invalid changes are parked, not"
                f" dead-lettered): {', '.join(sorted(self._dead_letters))}"
            )
        depth = self._stack.queue_depth()
        if any(depth.values()):
            problems.append(f"the callout queue is not empty: {depth}")
        return problems

    def _read_dead_letters(self) -> list[str]:
        """The notification ids of what the DLQ holds (received, left there: visible again after 60 s)."""
        found: dict[str, str] = {}
        for _ in range(1_000):
            messages = self._sqs.receive_message(
                QueueUrl=self._stack.resources.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                try:
                    notification = str(json.loads(message["Body"]).get("notification_id"))
                except (ValueError, AttributeError):
                    notification = f"(unreadable {message['MessageId']})"
                found[message["MessageId"]] = notification
        return list(found.values())

    def _trails(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        operations = self._stack.operations()
        keys = sorted({c.key for c in self._changes})
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = list(pool.map(lambda key: operations.trail(*key), keys))
        return dict(zip(keys, found, strict=True))

    def _check_every_change_settled(self, trails: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
        settled: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for items in trails.values():
            for item in items:
                settled[str(item.get("notification_id"))].append(item)
        problems = []
        for change in self._changes:
            outcomes = settled.get(change.notification_id, [])
            if not {str(o.get("status")) for o in outcomes} & FINAL_OUTCOMES:
                trail = ", ".join(
                    f"{str(o.get('sk', ''))[:23]} {o.get('status')} {o.get('error_code', '')}"
                    f" receive {o.get('receive_count')}"
                    for o in outcomes
                )
                problems.append(
                    f"no final outcome for {change.object_type} {change.record_id} v{change.version} "
                    f"({change.notification_id}, updated {change.updated.isoformat()}): {trail or 'nothing recorded'}"
                )
        return problems


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@contextlib.contextmanager
def _quiet_kills() -> Iterator[None]:
    stack_log = logging.getLogger("nrtsync_local.stack")
    hide = _HideSimulatedKills()
    stack_log.addFilter(hide)
    try:
        yield
    finally:
        stack_log.removeFilter(hide)


def run_drill(
    config: DrillConfig | None = None, *, stack_name: str | None = None, log_level: str | None = None
) -> DrillReport:
    """Starts a local stack set up for the drill, runs the drill, stops the stack; returns the report."""
    config = config or DrillConfig()
    random.seed(config.seed)  # the sync's retry jitter uses the module's generator: same seed, same delays
    switch = KillSwitch()
    drill: FaultDrill | None = None

    def kill_after_return(handler: Handler) -> Handler:
        def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
            response = handler(event, context)
            size = len(event.get("Records", []))
            if switch.take("after-return", size):
                if drill is not None:
                    drill.on_kill_after_return(size)
                raise SimulatedKillError(f"drill: killed after the handler returned, before {size} deletes")
            return response

        return invoke

    def kill_after_answer(port: SalesforcePort) -> SalesforcePort:
        # Injected through the wiring as the sync service's Salesforce port: it can die mid-batch once armed.
        def on_kill(call: str, records: int) -> None:
            if drill is not None:
                drill.on_kill_after_answer(call, records)

        return cast("SalesforcePort", KillAfterAnswer(port, switch, on_kill))

    stack = LocalStack(
        stack_name=stack_name or f"drill{os.getpid()}x{uuid.uuid4().hex[:6]}",
        sync_batch_window_seconds=config.batch_window_seconds,
        with_metrics=False,
        template=drill_template(config),
        environment_overrides={
            "RETRY_DELAY_SECONDS": str(config.retry_delay_seconds),
            "API_USAGE_RECHECK_SECONDS": str(config.api_recheck_seconds),
            **({"POWERTOOLS_LOG_LEVEL": log_level} if log_level else {}),
        },
        sync_handler_wrapper=kill_after_return,
        salesforce_wrapper=kill_after_answer,
    )
    with _quiet_kills(), stack:
        drill = FaultDrill(stack, config, switch)
        return drill.run()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = DrillConfig()
    parser = argparse.ArgumentParser(prog="python -m nrtsync_local.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=defaults.changes, help="changes to send (soak: 20000)")
    parser.add_argument(
        "--records", type=int, help="distinct records (default: about a quarter of --changes, 250..5000)"
    )
    parser.add_argument("--rate", type=float, default=defaults.rate_per_second, help="changes per second")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout_seconds, help="seconds")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--verbose", action="store_true", help="the handlers' INFO logs and the drill's schedule")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # 16 state threads share boto3's pool of 10: harmless
    logging.getLogger("botocore").setLevel(logging.WARNING)
    records = args.records or min(5_000, max(250, args.changes // 4))
    config = DrillConfig(
        changes=args.changes,
        records=records,
        rate_per_second=args.rate,
        seed=args.seed,
        drain_timeout_seconds=args.drain_timeout,
    )
    try:
        with contextlib.ExitStack() as quiet:
            if not args.verbose:
                # The handlers' EMF metrics go to stdout, as to CloudWatch Logs: thousands of lines nobody reads here.
                quiet.enter_context(
                    contextlib.redirect_stdout(quiet.enter_context(open(os.devnull, "w", encoding="utf-8")))
                )
                quiet.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
            report = run_drill(config, log_level=None if args.verbose else "ERROR")
    except DrillFailedError as exc:
        print(f"drill FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {"figures": report.figures, "waiting_by_reason": report.waiting_by_reason, "problems": report.problems},
                indent=2,
            )
        )
    else:
        print("\n".join(report.lines()))
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
