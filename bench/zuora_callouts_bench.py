"""End to end with the Zuora stand-in's own callouts: records changed in the stand-in at a steady rate, each change
delivered by the stand-in as Zuora delivers it, to Salesforce's answer, by the product's rule.

``bench/e2e_bench.py`` posts hand-made callouts itself (``updatedDate`` the instant before sending, credentials on
the first request, 8 sender threads). Here nothing is made by hand: the local stack starts with
``zuora_callouts=True`` (``zuora setup`` has made the event triggers and notification definitions), the bench
edits records through the stand-in's control API, the stand-in stamps each edit's ``UpdatedDate`` as Zuora stamps
an edit (its own clock, the moment of the change) and renders and sends the callout from its notification
definition on its own worker threads: a first request without credentials, the ``401`` challenge the front
answers, then the request with Basic credentials (non-preemptive, as ``zuora setup`` configures it). The history's
``e2e_ms`` (Salesforce's answer minus ``UpdatedDate``) therefore includes the time a change waits in the
stand-in's sender and the challenge round trip, which the hand-made figure leaves out.

The records changed are seeded first, with the stack's INSERT notifications switched off meanwhile (as an admin
deactivates a notification in Zuora), so that only the measured edits call out.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from bench.common import progress, quiet_handlers
from bench.e2e_bench import _history as history_latencies
from bench.workload import BATCH, MIX, Workload, fields_for, live_record, seed_parents
from nrtsync.domain.latency import percentile
from nrtsync.domain.mapping import cached_mapping
from nrtsync.domain.zuora_notifications import event_type_name
from nrtsync_cli.zuora_setup import LOCAL_STACK_NAME
from nrtsync_local.callouts import send_paced
from nrtsync_local.stack import LocalDeployment
from nrtsync_local.standin.process import ZuoraStandinClient
from nrtsync_local.zuora.callouts import CalloutSender as StandinCalloutSender
from nrtsync_local.zuora.describe import field_types

STANDIN_WORKERS: int = inspect.signature(StandinCalloutSender).parameters["workers"].default
"""The stand-in's sender threads: the child process builds its ``CalloutSender`` with the default, and neither
``LocalDeployment`` nor the stand-in's command line can change it."""
TARGET_E2E_P90_S = 10.0
TARGET_E2E_P50_S = 120.0
SLO_E2E_P90_S = 600.0
ZUORA_TIME_OF_DAY = "T09:00:00.000-08:00"
SAMPLE_SECONDS = 1.0
KEEPS_RATE = 0.95
"""Deliveries per second over the run, as a share of the change rate, at or above which the sender kept up."""


@dataclass(frozen=True)
class Change:
    """One edit the bench makes in Zuora: the hand-made bench's record ``number`` (``live_record``), edited to its
    next version's ``fields``."""

    number: int
    object_type: str
    record_id: str
    fields: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        """(object type, record id) as the history names the change: a versioned object's records by the field
        that names them across versions (a subscription by its number), others by their Zuora Id."""
        versions = cached_mapping(None).objects[self.object_type].versions
        return self.object_type, str(self.fields[versions.key]) if versions else self.record_id


def _interleaved_slots() -> list[int]:
    """The slots of a block of ``BATCH`` records in an order that spreads each object type evenly over the block
    (``live_record`` numbers them type by type), so that even a few changes mix the four types."""
    slots: list[tuple[float, int]] = []
    first = 0
    for _, share in MIX:
        slots += [((i + 0.5) / share, first + i) for i in range(share)]
        first += share
    return [slot for _, slot in sorted(slots)]


def changed_records(count: int, parents: list[str]) -> list[Change]:
    """The changes of a run: the hand-made bench's records (a distinct record each, the four object types in the
    batch mix, here interleaved), each edited to its next version."""
    slots = _interleaved_slots()
    changes = []
    for n in range(count):
        number = n // BATCH * BATCH + slots[n % BATCH]
        object_type, record_id, _ = live_record(number, parents)
        fields = fields_for(object_type, number, 2, parents[number % len(parents)])
        changes.append(Change(number, object_type, record_id, as_zuora(object_type, fields)))
    return changes


def seed_rows(changes: list[Change], parents: list[str], *, updated: datetime) -> dict[str, list[dict[str, Any]]]:
    """The Zuora records the run needs, per object, parents first: the accounts every child's ``AccountId`` names
    (their ``CrmId`` is what the children inherit) and each changed record at its previous version."""
    rows: dict[str, list[dict[str, Any]]] = {"Account": []}
    stamp = updated.isoformat(timespec="milliseconds")
    for n, account in enumerate(parents):
        rows["Account"].append(
            {"Id": account, "UpdatedDate": stamp} | as_zuora("Account", fields_for("Account", n, 0, ""))
        )
    for change in changes:
        number = change.number
        previous = as_zuora(
            change.object_type, fields_for(change.object_type, number, 1, parents[number % len(parents)])
        )
        rows.setdefault(change.object_type, []).append({"Id": change.record_id, "UpdatedDate": stamp} | previous)
    return rows


def as_zuora(object_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The hand-made callout's fields as Zuora holds them: no value where the callout carries an empty string, and a
    date-time where Zuora's field is one (``Invoice.PostedDate``; the stand-in, as Zuora, cannot render a date alone
    into a date-time merge field), at a time of day that keeps the date in the tenant's zone (Pacific)."""
    types = field_types().get(object_type, {})
    held = {k: v for k, v in fields.items() if v != ""}
    return {
        k: f"{v}{ZUORA_TIME_OF_DAY}" if types.get(k) == "datetime" and len(str(v)) == len("2026-01-05") else v
        for k, v in held.items()
    }


def delivery_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    """What the stand-in's delivery history (one row per attempt) says: attempts, notifications delivered, attempts
    past the first, statuses, and the 401 challenges (None when the stand-in's rows do not record them)."""
    statuses = Counter(
        "not sent" if h.get("error") else "no answer" if h.get("status") is None else str(h["status"]) for h in history
    )
    recorded = bool(history) and all("challenged" in h for h in history)
    delivered = {h["notification_id"] for h in history if h.get("delivered")}
    # Zuora stops after a callout it cannot render or send, and after its last attempt.
    given_up = {
        h["notification_id"]
        for h in history
        if not h.get("delivered") and (h.get("error") or int(h.get("attempt", 1)) >= int(h.get("attempt_limit", 1)))
    }
    return {
        "attempts": len(history),
        "notifications": len({h["notification_id"] for h in history}),
        "delivered": len(delivered),
        "given_up": len(given_up - delivered),
        "retries": sum(1 for h in history if int(h.get("attempt", 1)) > 1),
        "attempt_statuses": dict(sorted(statuses.items())),
        "challenges": sum(1 for h in history if h.get("challenged")) if recorded else None,
    }


def targets(result: dict[str, Any]) -> dict[str, bool | None]:
    """The figure judged on its own against the same targets as the hand-made one: P90 under 10 s, and the SLO
    (P50 under 120 s, P90 under 600 s); None where nothing was written."""
    p50, p90 = result.get("e2e_p50_s"), result.get("e2e_p90_s")
    return {
        "e2e_zuora_p50": None if p50 is None else p50 < TARGET_E2E_P50_S,
        "e2e_zuora_p90": None if p90 is None else p90 < TARGET_E2E_P90_S,
        "e2e_zuora_p90_slo": None if p90 is None else p90 < SLO_E2E_P90_S,
    }


def keeps_rate(changes: int, seconds_until_delivered: float, rate_per_second: float) -> bool:
    """Whether the sender delivered at the rate the changes were made (within ``KEEPS_RATE``)."""
    if seconds_until_delivered <= 0:
        raise ValueError("seconds_until_delivered must be positive")
    return changes / seconds_until_delivered >= KEEPS_RATE * rate_per_second


def delivery_legs_ms(outcomes: dict[tuple[str, str], tuple[int, int]]) -> list[int]:
    """Per written change, change in Zuora -> ingest received (``e2e_ms - sync_ms``): the stand-in's queue, the
    challenge round trip and the authenticated request."""
    return [e2e - sync for e2e, sync in outcomes.values()]


def written_outcomes(stack: LocalDeployment) -> dict[tuple[str, str], tuple[int, int]]:
    """(object type, record id) -> (e2e_ms, sync_ms) of every change written from a callout, in one paginated scan
    of the history table (moto answers a Query by scanning the table anyway)."""
    ddb = stack.client("dynamodb")
    found: dict[tuple[str, str], tuple[int, int]] = {}
    kwargs: dict[str, Any] = {
        "TableName": stack.resources.history_table,
        "FilterExpression": "#t = :outcome AND #s = :written AND #src = :callout",
        "ExpressionAttributeNames": {"#t": "type", "#s": "status", "#src": "source"},
        "ExpressionAttributeValues": {
            ":outcome": {"S": "outcome"},
            ":written": {"S": "written"},
            ":callout": {"S": "callout"},
        },
    }
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            key = (item["object_type"]["S"], item["record_id"]["S"])
            found[key] = (int(item["e2e_ms"]["N"]), int(item["sync_ms"]["N"]))
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _switch_inserts(zuora: ZuoraStandinClient, object_types: list[str], *, active: bool) -> None:
    """The stack's INSERT notification definitions on or off, through the stand-in's control API (what an admin
    does in Zuora's UI: the definition stays, its callouts stop)."""
    edits = {event_type_name(LOCAL_STACK_NAME, o, "INSERT"): {"active": active} for o in object_types}
    with zuora.session() as http:
        answer = http.post(f"{zuora.url}/__standin/notifications", json={"definition_edits": edits}, timeout=10)
    answer.raise_for_status()


def preemptive(zuora: ZuoraStandinClient) -> bool | None:
    """Whether the stand-in sends the credentials on the first request: the tenant setting when set, else what every
    notification definition's callout says (as ``zuora setup`` made them, read through Zuora's API); None when the
    definitions disagree."""
    tenant = zuora.callouts()["settings"].get("preemptive")
    if tenant is not None:
        return bool(tenant)
    with zuora.session() as http:
        form = {"client_id": zuora.client_id, "client_secret": zuora.client_secret, "grant_type": "client_credentials"}
        token = http.post(f"{zuora.url}/oauth/token", data=form, timeout=10).json()["access_token"]
        answer = http.get(
            f"{zuora.url}/notifications/notification-definitions",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    answer.raise_for_status()
    found = {bool((d.get("callout") or {}).get("calloutAuth", {}).get("preemptive")) for d in answer.json()["data"]}
    return found.pop() if len(found) == 1 else None


@dataclass
class _Backlog:
    """The stand-in's undelivered notifications, sampled every ``SAMPLE_SECONDS`` from a thread of its own."""

    zuora: ZuoraStandinClient
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        with self.zuora.session() as http:
            while not self._stop.wait(SAMPLE_SECONDS):
                answer = http.get(f"{self.zuora.url}/__standin/callouts", timeout=10)
                self.samples.append(int(answer.json()["pending"]))

    @contextmanager
    def sampling(self) -> Iterator[_Backlog]:
        thread = threading.Thread(target=self._run, name="zuora-backlog", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=15)


class _Editor:
    """Edits one record per call through the stand-in's control API, one keep-alive session per thread."""

    def __init__(self, zuora: ZuoraStandinClient, changes: list[Change]) -> None:
        self._zuora = zuora
        self._changes = changes
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    def change(self, n: int) -> tuple[bytes, str]:
        """``send_paced``'s ``callout(n)``: the n-th edit's body, and its object type in place of an id."""
        change = self._changes[n]
        return json.dumps({"records": [{"Id": change.record_id} | change.fields]}).encode(), change.object_type

    def post(self, body: bytes, object_type: str) -> requests.Response:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._zuora.session()
            with self._lock:
                self._sessions.append(session)
        url = f"{self._zuora.url}/__standin/update/{object_type}"
        return session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)

    def close(self) -> None:
        for session in self._sessions:
            session.close()


def _wait_delivered(zuora: ZuoraStandinClient, count: int, timeout: float) -> list[dict[str, Any]]:
    """The delivery history once each of ``count`` notifications is delivered or given up, and nothing is pending."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        answer = zuora.callouts()
        history: list[dict[str, Any]] = answer["history"]
        summary = delivery_summary(history)
        if answer["pending"] == 0 and summary["delivered"] + summary["given_up"] >= count:
            return history
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the Zuora stand-in delivered {delivery_summary(history)} of {count} in {timeout}s")
        pause.wait(0.2)


def bench_e2e_zuora(*, rate_per_second: float = 15.0, seconds: float = 40.0, latency_ms: int = 150) -> dict[str, Any]:
    """``count = rate x seconds`` records edited in the Zuora stand-in at ``rate_per_second``, delivered by its
    callouts, synced to the Salesforce stand-in at ``latency_ms`` a call; the figures (see the module doc)."""
    count = int(rate_per_second * seconds)
    progress(f"e2e (Zuora callouts): starting the local stack with the Zuora stand-in's callouts ({latency_ms} ms)")
    with (
        quiet_handlers(),
        LocalDeployment(
            salesforce_latency_ms=latency_ms,
            with_metrics=False,
            stack_name="bench-e2e-zuora",
            zuora_callouts=True,
            reconcile_every_seconds="off",
        ) as stack,
    ):
        assert stack.standin is not None  # noqa: S101 - no real org is configured here
        assert stack.zuora is not None  # noqa: S101 - nor a real tenant
        zuora = stack.zuora
        workload = Workload()
        seed_parents(stack.standin, workload)
        changes = changed_records(count, workload.parents)
        rows = seed_rows(changes, workload.parents, updated=datetime.now(UTC) - timedelta(hours=1))
        _switch_inserts(zuora, list(rows), active=False)
        for object_type, records in rows.items():
            zuora.seed(object_type, records)
        _switch_inserts(zuora, list(rows), active=True)
        editor = _Editor(zuora, changes)
        progress(f"e2e (Zuora callouts): {count} edits in the stand-in at {rate_per_second:g}/s")
        started = time.monotonic()
        with _Backlog(zuora).sampling() as backlog:
            edited = send_paced(editor.post, editor.change, rate=rate_per_second, count=count, workers=4)
            editor.close()
            sent_for = time.monotonic() - started
            progress(f"e2e (Zuora callouts): edited in {sent_for:.1f} s; waiting for the stand-in's deliveries")
            history = _wait_delivered(zuora, count, timeout=max(120.0, 10 * seconds))
        delivered_after = time.monotonic() - started
        sends_credentials_first = preemptive(zuora)
        stack.wait_until_drained(timeout=120)
        drained_after = time.monotonic() - started
        e2e, sync, written = history_latencies(stack)
        outcomes = written_outcomes(stack)
        stats = stack.poll_stats
        sizes = sorted(stats.batch_sizes)
    legs = sorted(delivery_legs_ms(outcomes))
    changed = {change.key for change in changes}
    return {
        "changes": count,
        "rate_per_second": rate_per_second,
        "seconds_editing": round(sent_for, 1),
        "seconds_until_delivered": round(delivered_after, 1),
        "seconds_until_drained": round(drained_after, 1),
        "edit_statuses": {str(k): v for k, v in sorted(Counter(e.status for e in edited).items())},
        "written": written,
        "changes_written": len(changed & set(outcomes)),
        "e2e_p50_s": _seconds(percentile(e2e, 50)),
        "e2e_p90_s": _seconds(percentile(e2e, 90)),
        "e2e_max_s": _seconds(max(e2e, default=None)),
        "sync_ms_p50": percentile(sync, 50),
        "sync_ms_p90": percentile(sync, 90),
        "delivery_ms_p50": percentile(legs, 50),
        "delivery_ms_p90": percentile(legs, 90),
        "standin": {
            **delivery_summary(history),
            "workers": STANDIN_WORKERS,
            "preemptive": sends_credentials_first,
            "backlog_max": max(backlog.samples, default=0),
            "backlog_samples": backlog.samples,
            "deliveries_per_second": round(count / delivered_after, 1),
            "keeps_rate": keeps_rate(count, delivered_after, rate_per_second),
        },
        "invocations": stats.invocations,
        "batch_sizes": {
            "min": sizes[0] if sizes else None,
            "median": sizes[len(sizes) // 2] if sizes else None,
            "max": sizes[-1] if sizes else None,
            "all": stats.batch_sizes,
        },
        "retried": stats.retried,
        "salesforce_latency_ms": latency_ms,
    }


def _seconds(value: int | None) -> float | None:
    return None if value is None else round(value / 1000, 3)
