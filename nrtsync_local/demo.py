"""`make demo`: the product's main job on this machine, from Zuora callouts to records in Salesforce, checked.

    .venv/bin/python -m nrtsync_local.demo [--accounts 24] [--seed 7] [--batch-window 1] [--log FILE]

1. starts the local stack in this process (moto, the HTTPS Salesforce stand-in, the API Gateway front, the SQS
   poller, the metrics function; docs/LOCAL.md) with an org that has a validation rule, one row lock and one
   HTTP 503 waiting for the sync;
2. sends the stream of ``nrtsync_local.demo_stream`` over HTTP to the callout URL, as Zuora would (Basic auth,
   ``Zuora-Notification-Id``/``Zuora-Request-Id``, the canonical JSON body);
3. waits until the queue is drained (children waiting for their parents included), runs the metrics function;
4. prints the Sync History, the failure list, three record trails, sync and end-to-end latency P50/P90 by the
   brief's rule, and the Salesforce API calls used;
5. checks that the stand-in holds exactly the newest valid version of every record sent and nothing else,
   that the refused record is on the failure list, that the queue and the dead-letter queue are empty and
   that every invalid callout got its 4xx. Exit status 0 only then; otherwise a diff and 1 (130 on Ctrl-C).

The functions' own logs and EMF metrics (what CloudWatch Logs would hold) go to a file, named at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import requests

from nrtsync.tables import minute_pk, plain_item
from nrtsync_local.demo_stream import (
    VALIDATION_RULE,
    Deliver,
    DemoStream,
    Happen,
    Phase,
    Stamper,
    Step,
    Version,
    build_stream,
)
from nrtsync_local.stack import LocalStack
from nrtsync_local.template import load_template, parameter_defaults

DEMO_BATCH_WINDOW_SECONDS = 1.0
DEMO_RETRY_DELAY_SECONDS = 1
STANDIN_LATENCY_MS = 20
SENDERS = 4
DRAIN_TIMEOUT_SECONDS = 90.0
WAITING_TIMEOUT_SECONDS = 15.0
PERCENTILES = (50, 90)
PIPELINE = "Zuora callouts -> API Gateway -> ingest -> SQS -> sync -> Salesforce"
EXIT_OK, EXIT_MISMATCH, EXIT_INTERRUPTED = 0, 1, 130

# --- what was sent and what came back -----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to one callout."""

    phase: int
    what: str
    object_type: str | None
    record_id: str | None
    notification_id: str
    expected: int
    status: int
    error: str
    detail: str
    version: Version | None = None

    @property
    def as_expected(self) -> bool:
        return self.status == self.expected


class CalloutSender:
    """Posts callouts to the local callout URL the way Zuora does."""

    def __init__(self, stack: LocalStack, stamper: Stamper) -> None:
        self._url = stack.callout_url
        self._auth = stack.callout_auth
        self._stamper = stamper
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []

    def close(self) -> None:
        for session in self._sessions:
            session.close()

    def _stamp(self, version: Version) -> None:
        with self._lock:
            if version.updated_date is None:
                self._stamper.stamp(version)

    def _http(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxy for 127.0.0.1, whatever the shell says
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def run(self, phase: int, step: Step) -> Answer | None:
        if isinstance(step, Happen):
            self._stamp(step.version)
            return None
        if isinstance(step, Deliver):
            if step.happen:
                self._stamp(step.version)
            version = step.version
            response = self._post(version.body(), version.notification_id, None if step.auth == "none" else self._auth)
            what = step.note or version.what
            return _answer(
                phase,
                what,
                version=version,
                notification_id=version.notification_id,
                expected=step.expected_status,
                response=response,
            )
        if step.template is not None:
            self._stamp(step.template)
        auth = (self._auth[0], "not-the-password") if step.auth == "wrong" else self._auth
        response = self._post(step.render(), step.notification_id, auth)
        return _answer(
            phase,
            step.what,
            version=step.template,
            notification_id=step.notification_id,
            expected=step.expected_status,
            response=response,
        )

    def _post(self, body: bytes, notification_id: str, auth: tuple[str, str] | None) -> requests.Response:
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "Accept": "*/*",
            "User-Agent": "Zuora-Notification/1.0",
            "Zuora-Notification-Id": notification_id,
            "Zuora-Request-Id": str(uuid.uuid4()),  # new on every attempt, retries included
        }
        return self._http().post(self._url, data=body, headers=headers, auth=auth, timeout=30)


def _answer(
    phase: int, what: str, *, version: Version | None, notification_id: str, expected: int, response: requests.Response
) -> Answer:
    try:
        document = response.json()
    except ValueError:
        document = {}
    if response.status_code == 200:
        error, detail = str(document.get("status", "?")), ""
    else:
        error = str(document.get("error") or document.get("message") or "?")
        problems = document.get("errors") or []
        detail = "; ".join(f"{p.get('field')}: {p.get('message')}" for p in problems) or str(
            document.get("message", "")
        )
        if response.status_code == 401:
            detail = f"WWW-Authenticate: {response.headers.get('WWW-Authenticate', '(none)')}"
    return Answer(
        phase=phase,
        what=what,
        object_type=None if version is None else version.object_type,
        record_id=None if version is None else version.record_id,
        notification_id=notification_id,
        expected=expected,
        status=response.status_code,
        error=error,
        detail=detail[:160],
        version=version,
    )


# --- what must be true at the end ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedRecord:
    label: str
    fields: dict[str, Any]
    lookups: dict[str, tuple[str, str]]
    """Lookup field -> (parent sObject, parent external id): the field must hold that parent's Salesforce Id."""


@dataclass
class Expectation:
    records: dict[str, dict[str, ExpectedRecord]]
    """sObject -> external id -> the newest valid version's mapped fields."""
    failures: dict[tuple[str, str], str]
    """(object type, Zuora id) -> error code expected on the failure list."""
    absent: dict[str, set[str]]
    """sObject -> external ids that must not be in Salesforce (refused, or only ever sent invalid)."""
    answers: list[Answer]
    external_id_field: dict[str, str] = field(default_factory=dict)


@dataclass
class Observation:
    records: dict[str, list[dict[str, Any]]]
    failures: list[dict[str, Any]]
    queue: dict[str, int]
    dead_letters: int


def expect(stream: DemoStream, answers: Sequence[Answer]) -> Expectation:
    """What Salesforce must hold: per record, the newest (by Zuora's updatedDate) change delivered validly."""
    from nrtsync.mapping import build_record, load_mapping  # noqa: PLC0415 - the layer, once the stack set it up

    mapping = load_mapping()
    newest: dict[tuple[str, str], Version] = {}
    for phase in stream.phases:
        for step in phase.steps:
            if isinstance(step, Deliver) and step.expected_status == 200:
                version = step.version
                current = newest.get(version.key)
                if current is None or _date(version) > _date(current):
                    newest[version.key] = version
    records: dict[str, dict[str, ExpectedRecord]] = {obj.sobject: {} for obj in mapping.objects.values()}
    ext_fields = {obj.sobject: obj.external_id_field for obj in mapping.objects.values()}
    absent: dict[str, set[str]] = {}
    for (object_type, record_id), version in sorted(newest.items()):
        obj = mapping.objects[object_type]
        if (object_type, record_id) in stream.refused:
            absent.setdefault(obj.sobject, set()).add(record_id)
            continue
        built = build_record(mapping, object_type, record_id, dict(version.fields))
        fields = {name: value for name, value in built.items() if not isinstance(value, dict)}
        lookups = {}
        for relationship, reference in built.items():
            if isinstance(reference, dict):
                parent = mapping.objects[_parent_object(mapping, object_type, relationship)]
                lookups[relationship.removesuffix("__r") + "__c"] = (
                    parent.sobject,
                    str(reference[parent.external_id_field]),
                )
        label = f"{object_type} {record_id} ({version.fields.get('Name') or _name_of(version)})"
        records[obj.sobject][record_id] = ExpectedRecord(label, fields, lookups)
    for object_type, record_id in stream.invalid_only:
        sobject = mapping.objects[object_type].sobject if object_type in mapping.objects else object_type
        ext_fields.setdefault(sobject, "Zuora__External_Id__c")
        absent.setdefault(sobject, set()).add(record_id)
    failures = dict.fromkeys(stream.refused, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    return Expectation(records, failures, absent, list(answers), ext_fields)


def _date(version: Version) -> datetime:
    if version.updated_date is None:
        raise RuntimeError(f"{version.key} was delivered without having happened")
    return version.updated_date


def _name_of(version: Version) -> str:
    for name in ("InvoiceNumber", "PaymentNumber"):
        if name in version.fields:
            return version.fields[name]
    return version.what


def _parent_object(mapping: Any, object_type: str, relationship: str) -> str:
    for parent in mapping.objects[object_type].parents.values():
        if parent.relationship == relationship:
            return str(parent.object)
    raise KeyError(relationship)


def observe(stack: LocalStack, expectation: Expectation) -> Observation:
    """What the stand-in, the failure list and the queues hold now."""
    standin = stack.standin
    if standin is None:
        raise RuntimeError("the demo needs the Salesforce stand-in")
    sobjects = sorted(set(expectation.records) | set(expectation.absent))
    records = {sobject: standin.records(sobject) for sobject in sobjects}
    sqs = stack.client("sqs")
    dlq = sqs.get_queue_attributes(
        QueueUrl=stack.resources.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return Observation(
        records=records,
        failures=stack.operations().failures(),
        queue=stack.queue_depth(),
        dead_letters=sum(int(value) for value in dlq.values()),
    )


def verify(expectation: Expectation, observation: Observation) -> list[str]:
    """Every difference between what must be true and what is, as one readable line each; empty when none."""
    problems = [
        f"callout {a.what!r} ({a.object_type or '-'} {a.record_id or '-'}): HTTP {a.status}, expected {a.expected}"
        for a in expectation.answers
        if not a.as_expected
    ]
    problems += _record_problems(expectation, observation)
    problems += _failure_list_problems(expectation, observation)
    if any(observation.queue.values()):
        problems.append(f"callout queue not empty: {observation.queue}")
    if observation.dead_letters:
        problems.append(f"dead-letter queue holds {observation.dead_letters} message(s)")
    return problems


def _record_problems(expectation: Expectation, observation: Observation) -> list[str]:
    def ext_field(sobject: str) -> str:
        return expectation.external_id_field.get(sobject, "Zuora__External_Id__c")

    held = {
        sobject: {str(r.get(ext_field(sobject))): r for r in records}
        for sobject, records in observation.records.items()
    }
    problems: list[str] = []
    for sobject in sorted(set(expectation.records) | set(expectation.absent)):
        stored = held.get(sobject, {})
        expected = expectation.records.get(sobject, {})
        for record_id, wanted in expected.items():
            record = stored.get(record_id)
            if record is None:
                problems.append(f"{sobject} {wanted.label}: missing in Salesforce")
            else:
                problems += _field_problems(sobject, wanted, record, held)
        for record_id in sorted(set(stored) - set(expected)):
            why = (
                "refused or only ever sent invalid"
                if record_id in expectation.absent.get(sobject, set())
                else "never sent"
            )
            name = stored[record_id].get("Name")
            problems.append(f"{sobject} {record_id}: in Salesforce but must not be ({why}); Name {name!r}")
    return problems


def _field_problems(
    sobject: str, wanted: ExpectedRecord, record: dict[str, Any], held: dict[str, dict[str, dict[str, Any]]]
) -> list[str]:
    problems = [
        f"{sobject} {wanted.label}: {name} expected {value!r}, Salesforce has {record.get(name)!r}"
        for name, value in wanted.fields.items()
        if record.get(name) != value
    ]
    for name, (parent_sobject, parent_ext) in wanted.lookups.items():
        parent_id = held.get(parent_sobject, {}).get(parent_ext, {}).get("Id")
        if parent_id is None or record.get(name) != parent_id:
            problems.append(
                f"{sobject} {wanted.label}: {name} expected the Id of {parent_sobject} {parent_ext} "
                f"({parent_id or 'not in Salesforce'}), Salesforce has {record.get(name)!r}"
            )
    return problems


def _failure_list_problems(expectation: Expectation, observation: Observation) -> list[str]:
    listed = {
        (str(f.get("object_type")), str(f.get("record_id"))): str(f.get("error_code")) for f in observation.failures
    }
    problems: list[str] = []
    for (object_type, record_id), code in sorted(expectation.failures.items()):
        found = listed.get((object_type, record_id))
        if found is None:
            problems.append(f"failure list: {object_type} {record_id} missing (expected {code})")
        elif found != code:
            problems.append(f"failure list: {object_type} {record_id} has {found}, expected {code}")
    problems += [
        f"failure list: unexpected {object_type} {record_id} ({code})"
        for (object_type, record_id), code in sorted(listed.items())
        if (object_type, record_id) not in expectation.failures
    ]
    return problems


# --- progress -----------------------------------------------------------------------------------------------


class Progress:
    """Stage lines on the report stream; a live line on stderr (only on a terminal) while something is awaited."""

    def __init__(self, out: TextIO, err: TextIO, total_stages: int) -> None:
        self._out, self._err = out, err
        self._total = total_stages
        self._stage = 0
        self._started = time.monotonic()
        self._live = err.isatty()

    def stage(self, text: str) -> None:
        self._stage += 1
        print(f"[{self._stage}/{self._total}] {text}", file=self._out, flush=True)

    def note(self, text: str) -> None:
        print(f"      {text}", file=self._out, flush=True)

    def live(self, text: str) -> None:
        if self._live:
            print(f"\r      {text}\x1b[K", end="", file=self._err, flush=True)

    def clear(self) -> None:
        if self._live:
            print("\r\x1b[K", end="", file=self._err, flush=True)

    def bar(self, label: str, done: int, total: int, width: int = 30) -> None:
        filled = width * done // total if total else width
        self.live(f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started


def wait_drained(stack: LocalStack, progress: Progress, timeout: float = DRAIN_TIMEOUT_SECONDS) -> float:
    """Until the queue holds nothing (visible, in flight, delayed: waiting children too) and no sync runs."""
    started = time.monotonic()
    spinner = "|/-\\"
    turn = 0
    while True:
        try:
            stack.wait_until_drained(timeout=0.4)
        except TimeoutError:
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                progress.clear()
                raise
            depth = stack.queue_depth()
            turn += 1
            progress.live(
                f"{spinner[turn % 4]} draining the queue: {depth['visible']} visible, {depth['in_flight']} in flight,"
                f" {depth['delayed']} delayed  {elapsed:4.1f}s"
            )
            continue
        progress.clear()
        return time.monotonic() - started


def wait_for_waiting(stack: LocalStack, key: tuple[str, str], progress: Progress) -> float | None:
    """Until ``key``'s trail shows a ``waiting`` outcome (its parent is not in Salesforce yet); None on timeout."""
    started = time.monotonic()
    operations = stack.operations()
    while time.monotonic() - started < WAITING_TIMEOUT_SECONDS:
        if any(item.get("status") == "waiting" for item in operations.trail(*key)):
            progress.clear()
            return time.monotonic() - started
        progress.live(f"waiting for the sync to try {key[0]} {key[1][:12]}...  {time.monotonic() - started:4.1f}s")
        time.sleep(0.2)
    progress.clear()
    return None


# --- the report ---------------------------------------------------------------------------------------------


def _section(out: TextIO, title: str) -> None:
    print(f"\n== {title} " + "=" * max(3, 100 - len(title)), file=out)


def _cli(args: list[str], stack: LocalStack, out: TextIO) -> int:
    from nrtsync_cli.cli import run  # noqa: PLC0415 - the layer, imported once the stack set the environment

    buffer = io.StringIO()
    code = run(args, operations=stack.operations(), out=buffer)
    print(f"$ nrtsync --local {' '.join(args)}", file=out)
    for line in buffer.getvalue().splitlines():
        print(f"  {line}", file=out)
    return code


def _table(rows: Sequence[Sequence[str]], out: TextIO, right: frozenset[int] = frozenset()) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  " + "  ".join(cells).rstrip(), file=out)
        if number == 0:
            print("  " + "  ".join("-" * w for w in widths), file=out)


def history_latencies(stack: LocalStack, since: datetime) -> dict[str, list[int]]:
    """Every written record's sync and end-to-end latency (ms) since ``since``, from the history's minute items."""
    ddb = stack.client("dynamodb")
    latencies: dict[str, list[int]] = {"sync_ms": [], "e2e_ms": []}
    minute = since.replace(second=0, microsecond=0)
    end = datetime.now(UTC)
    while minute <= end:
        kwargs: dict[str, Any] = {
            "TableName": stack.resources.history_table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": minute_pk(minute)}},
        }
        while True:
            page = ddb.query(**kwargs)
            for item in page.get("Items", []):
                plain = plain_item(item)
                for name, values in latencies.items():
                    values.extend(int(v) for v in plain.get(name, []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        minute += timedelta(minutes=1)
    return latencies


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value:,} ms"


def report(
    stack: LocalStack, stream: DemoStream, answers: Sequence[Answer], since: datetime, out: TextIO
) -> dict[str, Any]:
    """Prints the demo's report; returns the figures it printed (for the tests)."""
    from nrtsync.latency import percentiles  # noqa: PLC0415

    figures: dict[str, Any] = {}
    _section(out, "Callouts (HTTP answers of the callout URL)")
    statuses = Counter(a.status for a in answers)
    retries = sum(1 for a in answers if "retry" in a.what.lower())
    print(
        f"  {len(answers)} requests: "
        + ", ".join(f"{n} x HTTP {s}" for s, n in sorted(statuses.items()))
        + f"; {retries} of them Zuora retries of a notification already delivered",
        file=out,
    )
    refused = [a for a in answers if a.status != 200]
    print("\n  Refused callouts:", file=out)
    rows: list[tuple[str, ...]] = [("callout", "expected", "HTTP", "error", "detail")]
    rows += [(a.what, str(a.expected), str(a.status), a.error, a.detail) for a in refused]
    _table(rows, out, right=frozenset({1, 2}))

    _section(out, "Sync History: sessions (newest first)")
    _cli(["sessions", "--since", "15m", "--limit", "500"], stack, out)
    sessions = stack.operations().sessions(since=timedelta(minutes=15), limit=1000)
    totals = Counter[str]()
    for session in sessions:
        for name in ("records_in", "written", "superseded", "duplicates", "stale_skipped", "waiting", "failed"):
            totals[name] += int(session.get(name) or 0)
    figures["outcomes"] = dict(totals)
    print(
        f"\n  {len(sessions)} sessions, {totals['records_in']} changes in: {totals['written']} written, "
        f"{totals['superseded']} superseded, {totals['duplicates']} duplicate, {totals['stale_skipped']} stale, "
        f"{totals['waiting']} waiting (then retried), {totals['failed']} failed",
        file=out,
    )

    _section(out, "Failure list")
    _cli(["failures"], stack, out)

    for key, why in (
        ("stale", "an older change delivered after the newer one was written: skipped as stale"),
        ("early_child", "sent before its account: waited for the parent, then written with the lookup set"),
        ("row_lock", "UNABLE_TO_LOCK_ROW once (injected): waited, then written"),
    ):
        object_type, record_id = stream.highlights[key]
        _section(out, f"Trail of {object_type} {record_id}")
        print(f"  ({why})", file=out)
        _cli(["trail", object_type, record_id], stack, out)

    _section(out, "Latency of every written record, P50/P90 by the brief's rule (sort, skip p%, take the next)")
    latencies = history_latencies(stack, since)
    latency_rows: list[tuple[str, ...]] = [("latency", "records", "P50", "P90")]
    labels = {
        "sync_ms": "sync (callout received -> Salesforce accepted)",
        "e2e_ms": "end-to-end (Zuora updatedDate -> Salesforce)",
    }
    for name, values in latencies.items():
        result = percentiles(values, PERCENTILES)
        figures[name] = result
        latency_rows.append((labels[name], str(len(values)), _ms(result[50]), _ms(result[90])))
    _table(latency_rows, out, right=frozenset({1, 2, 3}))
    defaults = parameter_defaults(load_template())
    print(
        f"  The product's objectives: P50 under {defaults['LatencyP50SloSeconds']} s, P90 under "
        f"{defaults['LatencyP90SloSeconds']} s (Zuora's connector promises 2 and 10 minutes).",
        file=out,
    )

    _section(out, "Salesforce API calls")
    standin = stack.standin
    stats = standin.stats() if standin is not None else {}
    per_call = [int(n) for n in stats.get("records_per_call", [])]
    accepted = sum(1 for a in answers if a.status == 200)
    figures["api_calls"] = int(stats.get("api_calls", 0))
    figures["written"] = totals["written"]
    print(
        f"  {figures['api_calls']} API calls (each up to five sObject Collections of 200 records; OAuth token "
        f"requests not counted: {stats.get('token_requests', 0)}) for {totals['written']} records written.\n"
        f"  A connector calling Salesforce once per change would have made {accepted} calls (one per accepted "
        f"callout), or {totals['written']} for the writes alone.\n"
        f"  Records per call: max {max(per_call, default=0)}, mean {sum(per_call) / max(1, len(per_call)):.1f}. "
        f"Faults the stand-in injected: {stats.get('injected_faults', 0)} (HTTP 503, retried within the call). "
        f"Org API usage: {stats.get('api_used', 0)}/{stats.get('api_limit', 0)}.",
        file=out,
    )
    return figures


# --- running it ---------------------------------------------------------------------------------------------


@dataclass
class DemoOptions:
    accounts: int = 24
    seed: int = 7
    batch_window: float = DEMO_BATCH_WINDOW_SECONDS
    log: Path | None = None


@dataclass
class DemoRun:
    """What one run produced (the tests read it)."""

    exit_code: int
    stream: DemoStream
    answers: list[Answer] = field(default_factory=list)
    expectation: Expectation | None = None
    observation: Observation | None = None
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    log_path: Path | None = None


Inspect = Callable[[LocalStack, DemoRun], None]


def print_verdict(problems: Sequence[str], out: TextIO) -> int:
    """The verdict and the exit status: 0 when nothing differs, else the diff and 1."""
    if not problems:
        print("RESULT: OK", file=out)
        return EXIT_OK
    print(f"RESULT: FAILED, {len(problems)} difference(s) between what was sent and what Salesforce holds:", file=out)
    for problem in problems:
        print(f"  - {problem}", file=out)
    return EXIT_MISMATCH


def _verification_summary(expectation: Expectation, observation: Observation, out: TextIO) -> None:
    expected = sum(len(records) for records in expectation.records.values())
    held = sum(len(records) for records in observation.records.values())
    absent = sum(len(ids) for ids in expectation.absent.values())
    refused = sum(1 for a in expectation.answers if a.expected != 200)
    print(
        f"  Salesforce holds {held} records; expected exactly {expected}, each with the newest valid version's mapped "
        f"fields and its parent lookups,\n  and none of the {absent} refused or only-invalid ones. Failure list: "
        f"{len(observation.failures)} (expected {len(expectation.failures)}). Queue {observation.queue}, "
        f"dead letters {observation.dead_letters}. Refused callouts expected: {refused}.",
        file=out,
    )


def _step_key(step: Step) -> tuple[str, str] | str:
    if isinstance(step, Deliver | Happen):
        return step.version.key
    return step.notification_id


def _send_phase(sender: CalloutSender, number: int, phase: Phase, progress: Progress, answers: list[Answer]) -> float:
    """Sends a phase's callouts SENDERS at a time, as Zuora does, but one record's callouts in their order."""
    started = time.monotonic()
    last: dict[tuple[str, str] | str, Future[Answer | None]] = {}
    futures: list[Future[Answer | None]] = []

    def run(step: Step, before: Future[Answer | None] | None) -> Answer | None:
        if before is not None:
            before.result()  # submitted earlier, so already running or done: the pool takes work in order
        return sender.run(number, step)

    pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="zuora")
    try:
        for step in phase.steps:
            key = _step_key(step)
            future = pool.submit(run, step, last.get(key))
            last[key] = future
            futures.append(future)
        for done, future in enumerate(futures, 1):
            answer = future.result()
            if answer is not None:
                answers.append(answer)
            progress.bar("sending", done, len(futures))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C: what has not started is not sent
        progress.clear()
    return time.monotonic() - started


def run_demo(options: DemoOptions, *, out: TextIO, err: TextIO = sys.stderr, inspect: Inspect | None = None) -> DemoRun:
    """The whole demo; ``inspect`` (tests) is called after the verification, while the stack still runs."""
    stream = build_stream(accounts=options.accounts, seed=options.seed)
    demo = DemoRun(exit_code=EXIT_MISMATCH, stream=stream, log_path=options.log or _new_log_file())
    assert demo.log_path is not None  # noqa: S101 - for mypy
    progress = Progress(out, err, total_stages=len(stream.phases) + 4)
    print(f"nrtsync demo: {PIPELINE}, all on this machine\n", file=out, flush=True)
    progress.stage("Starting the local stack (moto, Salesforce stand-in, API front, SQS poller, metrics)")
    stack = LocalStack(
        stack_name=f"demo{uuid.uuid4().hex[:8]}",
        sync_batch_window_seconds=options.batch_window,
        salesforce_latency_ms=STANDIN_LATENCY_MS,
        with_metrics=True,
        environment_overrides={"RETRY_DELAY_SECONDS": str(DEMO_RETRY_DELAY_SECONDS)},
    )
    with demo.log_path.open("w", encoding="utf-8") as log, _functions_write_to(log), stack:
        _function_logger_to(log)
        _prepare_org(stack, stream, options, progress)
        since = datetime.now(UTC)
        _send_stream(stack, stream, options, progress, demo.answers)
        progress.stage("Waiting until nothing is left on the queue (children waiting for parents included)")
        progress.note(f"drained in {wait_drained(stack, progress):.1f} s")
        progress.stage("Running the metrics function once (as its schedule does every minute)")
        metrics = stack.run_metrics_now()
        progress.note(
            f"published {metrics.get('metric_data_published')} metric data points to (moto's) CloudWatch "
            f"(windows 5m/1h/24h/7d; minute {metrics.get('minute')})"
        )
        progress.stage("Report")
        demo.figures = report(stack, stream, demo.answers, since, out)
        _section(out, "Verification")
        demo.expectation = expect(stream, demo.answers)
        demo.observation = observe(stack, demo.expectation)
        _verification_summary(demo.expectation, demo.observation, out)
        demo.problems = verify(demo.expectation, demo.observation)
        if inspect is not None:
            inspect(stack, demo)
        print(f"\nFunction logs and EMF metrics (what CloudWatch Logs would hold): {demo.log_path}", file=out)
    demo.seconds = progress.elapsed
    print(f"Done in {demo.seconds:.1f} s; everything the demo started is stopped.", file=out)
    demo.exit_code = print_verdict(demo.problems, out)
    return demo


def _new_log_file() -> Path:
    descriptor, name = tempfile.mkstemp(prefix="nrtsync-demo-", suffix=".log")
    os.close(descriptor)
    return Path(name)


def _prepare_org(stack: LocalStack, stream: DemoStream, options: DemoOptions, progress: Progress) -> None:
    """The org's validation rule and a row lock; says how this run differs from a deployed stack."""
    standin = stack.standin
    if standin is None:
        raise RuntimeError("the demo runs against the Salesforce stand-in (unset SALESFORCE_LOGIN_URL)")
    standin.set_faults(validation_rules=[VALIDATION_RULE], row_lock={"external_ids": stream.row_lock_ids, "count": 1})
    defaults = parameter_defaults(load_template())
    progress.note(f"ready in {progress.elapsed:.1f} s; callout URL {stack.callout_url} (Basic auth)")
    progress.note(
        f"batching window {options.batch_window:g} s here (deployed default BatchingWindowSeconds="
        f"{defaults['BatchingWindowSeconds']}, at least 1), retry delay {DEMO_RETRY_DELAY_SECONDS} s "
        f"(deployed {defaults['RetryDelaySeconds']} s), stand-in {STANDIN_LATENCY_MS} ms per call"
    )
    progress.note(
        f"the org: a validation rule refusing Name = {VALIDATION_RULE['equals']!r}; one UNABLE_TO_LOCK_ROW "
        "on an invoice; one HTTP 503 on the first call of phase 2"
    )


def _send_stream(
    stack: LocalStack, stream: DemoStream, options: DemoOptions, progress: Progress, answers: list[Answer]
) -> None:
    standin = stack.standin
    sender = CalloutSender(stack, Stamper(random.Random(options.seed)))  # noqa: S311 - demo timing jitter
    try:
        for number, phase in enumerate(stream.phases, 1):
            if number == 2 and standin is not None:
                standin.set_faults(fail_next=[{"status": 503}])
            progress.stage(f"{phase.title}: {len(phase.steps)} steps")
            seconds = _send_phase(sender, number, phase, progress, answers)
            progress.note(f"{sum(1 for a in answers if a.phase == number)} callouts sent in {seconds:.1f} s")
            if phase.settle == "waiting" and phase.watch is not None:
                waited = wait_for_waiting(stack, phase.watch, progress)
                progress.note(
                    "the sync tried them: they wait for their parent accounts"
                    if waited is not None
                    else "the sync has not tried them yet; they may meet their parents in one batch"
                )
            elif phase.settle == "drain":
                progress.note(f"queue drained in {wait_drained(stack, progress):.1f} s")
    finally:
        sender.close()


@contextlib.contextmanager
def _functions_write_to(log: TextIO) -> Iterator[None]:
    """The handlers print EMF metrics to stdout and log there: into ``log`` while the demo runs.

    Powertools' logger keeps the stream it was built with, so ``_function_logger_to`` points it at ``log`` once
    the stack has imported it; on the way out it gets its stream back (stdout, if it was built inside this).
    """
    try:
        with contextlib.redirect_stdout(log):
            yield
    finally:
        for handler, stream in _logger_streams.values():
            handler.stream = sys.stdout if stream is log or getattr(stream, "closed", False) else stream
        _logger_streams.clear()


_logger_streams: dict[int, tuple[logging.StreamHandler[Any], Any]] = {}


def _function_logger_to(log: TextIO) -> None:
    from nrtsync.observability import logger  # noqa: PLC0415 - imported by the stack with its environment

    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            _logger_streams.setdefault(id(handler), (handler, handler.stream))
            handler.stream = log


def _parse_args(argv: Sequence[str] | None) -> DemoOptions:
    parser = argparse.ArgumentParser(prog="python -m nrtsync_local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=24, help="customer accounts in the stream (default 24)")
    parser.add_argument("--seed", type=int, default=7, help="the stream's random seed (default 7)")
    parser.add_argument(
        "--batch-window",
        type=float,
        default=DEMO_BATCH_WINDOW_SECONDS,
        help=f"sync batching window in seconds (default {DEMO_BATCH_WINDOW_SECONDS:g}; deployed default 2)",
    )
    parser.add_argument("--log", type=Path, help="where the functions' logs go (default: a new temporary file)")
    args = parser.parse_args(argv)
    return DemoOptions(accounts=args.accounts, seed=args.seed, batch_window=args.batch_window, log=args.log)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    options = _parse_args(argv)
    stdout = out or sys.stdout

    def on_sigterm(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        return run_demo(options, out=stdout).exit_code
    except KeyboardInterrupt:
        print("\ninterrupted: the local stack was stopped", file=stdout)
        return EXIT_INTERRUPTED
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
