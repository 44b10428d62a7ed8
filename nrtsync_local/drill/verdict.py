"""The drill's verdict: every record at the newest version sent, every change settled, the failure list exactly
the invalid changes, the queues empty; and the report with the figures."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from nrtsync_local.drill.generator import Change
from nrtsync_local.drill.scheduler import Kill

if TYPE_CHECKING:
    from nrtsync_local.stack import LocalDeployment
    from nrtsync_local.standin.process import StandinClient

ACCOUNTS = "Zuora__CustomerAccount__c"
SUBSCRIPTIONS = "Zuora__Subscription__c"
EXTERNAL_ID = "Zuora__External_Id__c"
FINAL_OUTCOMES = frozenset({"written", "superseded", "duplicate", "stale", "failed"})

Trails = dict[tuple[str, str], list[dict[str, Any]]]


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


class Verdict:
    """Reads what the pipeline did (Salesforce, the sync history, the failure list, the queues) after the drain."""

    def __init__(self, stack: LocalDeployment, standin: StandinClient, sqs: Any) -> None:
        self._stack = stack
        self._standin = standin
        self._sqs = sqs

    def report(
        self,
        changes: list[Change],
        counts: Counter[str],
        kills: list[Kill],
        problems_so_far: list[str],
        seconds: tuple[float, float, float],
    ) -> DrillReport:
        """``seconds``: sending, draining after the last send, and the whole run."""
        send_seconds, drain_seconds, total_seconds = seconds
        problems = list(problems_so_far)
        problems += self._check_records(changes)
        trails = self._trails(changes)
        problems += _check_every_change_settled(changes, trails)
        failure_problems, dead_letters = self._check_failures_and_queues(changes)
        problems += failure_problems
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
            "changes_sent": len(changes),
            "deliveries": counts["deliveries"],
            "sent_http": counts["sent_http"],
            "sent_queue": counts["sent_queue"],
            "redeliveries": counts["redeliveries"],
            "reordered": counts["reordered"],
            "invalid_sent": counts["invalid_sent"],
            "records": len({c.key for c in changes}),
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
        return DrillReport(figures, problems, dict(waiting_by_reason), list(kills), dead_letters=dead_letters)

    def _check_records(self, changes: list[Change]) -> list[str]:
        problems: list[str] = []
        stored = {
            "Account": {r[EXTERNAL_ID]: r for r in self._standin.records(ACCOUNTS)},
            "Subscription": {r[EXTERNAL_ID]: r for r in self._standin.records(SUBSCRIPTIONS)},
        }
        newest = _newest(changes)
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

    def _check_failures_and_queues(self, changes: list[Change]) -> tuple[list[str], list[str]]:
        """The problems, and the notification ids found in the DLQ."""
        problems: list[str] = []
        operations = self._stack.operations()
        listed = Counter(
            (str(f["object_type"]), str(f["record_id"]), str(f["error_code"])) for f in operations.failures()
        )
        wanted = Counter((c.object_type, c.record_id, str(c.refusal)) for c in changes if c.refusal)
        for key in sorted(set(listed) | set(wanted)):
            if listed[key] != wanted[key]:
                problems.append(f"failure list holds {listed[key]} x {key}, expected {wanted[key]}")
        dead_letters = self._read_dead_letters()
        if dead_letters:
            problems.append(
                f"DLQ: {len(dead_letters)} messages (expected none: invalid changes are parked, not"
                f" dead-lettered): {', '.join(sorted(dead_letters))}"
            )
        depth = self._stack.queue_depth()
        if any(depth.values()):
            problems.append(f"the callout queue is not empty: {depth}")
        return problems, dead_letters

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

    def _trails(self, changes: list[Change]) -> Trails:
        operations = self._stack.operations()
        keys = sorted({c.key for c in changes})
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = list(pool.map(lambda key: operations.trail(*key), keys))
        return dict(zip(keys, found, strict=True))


def _newest(changes: list[Change]) -> dict[tuple[str, str], Change]:
    newest: dict[tuple[str, str], Change] = {}
    for change in changes:
        if change.refusal is None and (change.key not in newest or change.updated > newest[change.key].updated):
            newest[change.key] = change
    return newest


def _check_every_change_settled(changes: list[Change], trails: Trails) -> list[str]:
    settled: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for items in trails.values():
        for item in items:
            settled[str(item.get("notification_id"))].append(item)
    problems = []
    for change in changes:
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
