"""``nrtsync --stack S alarm-test``: prove that an alarm's notification leaves CloudWatch, after a deploy.

An alarm can change state without notifying anyone: a topic whose key CloudWatch may not use, a topic policy
without ``cloudwatch.amazonaws.com``. The command sets one alarm to ``ALARM`` with ``SetAlarmState``, waits for
CloudWatch to run the alarm's actions, reads the alarm's history for each action's result ("Successfully
executed action ..." or "Failed to execute action ..."), and sets the alarm back to ``OK`` (CloudWatch would also
put it back at its next evaluation). The on-call should then find an ALARM and an OK message.

The operator needs ``cloudwatch:DescribeAlarms``, ``cloudwatch:SetAlarmState`` and
``cloudwatch:DescribeAlarmHistory`` on the stack's alarms.
"""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync_cli.errors import report_error

# The alarm the test sets by default: the dead-letter alarm, whose real ALARM is rare and whose meaning ("a change
# needs an operator") makes a test message easy to recognise in a pager.
DEFAULT_ALARM_SUFFIX = "dead-letters"
# CloudWatch runs an alarm's actions within seconds of a state change; the history is read this many times.
HISTORY_POLLS = 12
POLL_SECONDS = 5.0


class AlarmTestError(RuntimeError):
    """The alarm could not be found, set or read."""


@dataclass(frozen=True)
class ActionResult:
    action: str
    succeeded: bool
    summary: str


def add_alarm_commands(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    sub = add("alarm-test", "set one alarm to ALARM and back to OK, and show whether its notifications were sent")
    sub.add_argument("--alarm", help=f"the alarm's name (default: <stack>-{DEFAULT_ALARM_SUFFIX})")
    sub.add_argument("--by", default=None, help="who (default: your login name); written in the state reason")


def alarm_actions(cloudwatch: Any, name: str) -> list[str]:
    try:
        alarms = cloudwatch.describe_alarms(AlarmNames=[name]).get("MetricAlarms", [])
    except (ClientError, BotoCoreError) as exc:
        raise AlarmTestError(f"cannot read alarm {name}: {exc}") from exc
    if not alarms:
        raise AlarmTestError(
            f"no alarm {name} (the stack names them <stack>-...; `nrtsync --stack S status` lists them)"
        )
    return [str(action) for action in alarms[0].get("AlarmActions", [])]


def action_results(cloudwatch: Any, name: str, since: datetime) -> list[ActionResult]:
    """The alarm's action runs since ``since``, from its history (newest first as CloudWatch lists them)."""
    try:
        items = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="Action", StartDate=since).get(
            "AlarmHistoryItems", []
        )
    except (ClientError, BotoCoreError) as exc:
        raise AlarmTestError(f"cannot read the history of alarm {name}: {exc}") from exc
    results = []
    for item in items:
        summary = str(item.get("HistorySummary", ""))
        data = json.loads(item.get("HistoryData") or "{}")
        action = str(data.get("notificationResource") or summary.rsplit(" ", 1)[-1])
        results.append(ActionResult(action, summary.startswith("Successfully"), summary))
    return results


def alarm_test(
    cloudwatch: Any,
    name: str,
    *,
    by: str,
    sleep: Callable[[float], None],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[list[str], list[ActionResult]]:
    """Sets ``name`` to ALARM, waits for its actions' results, sets it back to OK; returns (actions, results)."""
    actions = alarm_actions(cloudwatch, name)
    if not actions:
        return actions, []
    started = now()
    reason = f"nrtsync alarm-test by {by}: a delivery check, not a real alarm"
    try:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=reason)
        results: list[ActionResult] = []
        for _ in range(HISTORY_POLLS):
            sleep(POLL_SECONDS)
            results = action_results(cloudwatch, name, started)
            if {result.action for result in results} >= set(actions):
                break
    finally:
        try:
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason=reason + " (back to OK)")
        except (ClientError, BotoCoreError) as exc:
            raise AlarmTestError(f"cannot set alarm {name} back to OK: {exc}") from exc
    return actions, results


def run_alarm_command(
    args: argparse.Namespace,
    out: TextIO,
    sleep: Callable[[float], None],
    *,
    cloudwatch: Any = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """0 every action delivered, 1 an action failed, none ran in time or the alarm notifies nobody, 2 usage,
    3 the alarm could not be reached."""
    if not getattr(args, "stack", None) and cloudwatch is None:
        return report_error("alarm-test needs --stack (the local stack deploys no alarms)", 2, as_json=args.json)
    name = args.alarm or f"{args.stack}-{DEFAULT_ALARM_SUFFIX}"
    try:
        if cloudwatch is None:
            session = boto3.Session(profile_name=args.profile, region_name=args.region)
            cloudwatch = session.client("cloudwatch")
        actions, results = alarm_test(cloudwatch, name, by=args.by or getpass.getuser(), sleep=sleep, now=now)
    except (AlarmTestError, BotoCoreError) as exc:
        return report_error(str(exc), 3, as_json=args.json)
    delivered = {result.action for result in results if result.succeeded}
    rows = [
        {"action": action, "delivered": action in delivered, "history": _summary(results, action)} for action in actions
    ]
    if args.json:
        print(json.dumps({"alarm": name, "actions": rows}, indent=2), file=out)
    elif not actions:
        print(f"{name} notifies nobody: deploy with AlarmEmail or AlarmTopicArn", file=out)
    for row in [] if args.json else rows:
        print(f"{'sent  ' if row['delivered'] else 'FAILED'} {row['action']}: {row['history']}", file=out)
    return 0 if actions and all(row["delivered"] for row in rows) else 1


def _summary(results: list[ActionResult], action: str) -> str:
    found = [result.summary for result in results if result.action == action]
    return found[0] if found else "no action run recorded yet"
