"""``nrtsync alarm-test``: an alarm is set to ALARM and back, and its actions' results come from its history.

CloudWatch here is an in-memory fake that records state changes and, on ALARM, writes one history item per
action the way CloudWatch does (a failure for a topic whose key CloudWatch may not use).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest

from nrtsync_cli.alarm_commands import HISTORY_POLLS, run_alarm_command
from nrtsync_cli.cli import build_parser

STACK = "nrtsync-prod"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:nrtsync-prod-AlarmTopic"
PAGER = "arn:aws:sns:eu-west-1:123456789012:on-call"
T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


class FakeCloudWatch:
    def __init__(self, actions: list[str], *, failing: frozenset[str] = frozenset(), runs_after: int = 1) -> None:
        self.actions = actions
        self.failing = failing
        self.runs_after = runs_after  # history reads before CloudWatch has run the actions
        self.states: list[str] = []
        self.history: list[dict[str, Any]] = []
        self.reads = 0

    def describe_alarms(self, AlarmNames: list[str]) -> dict[str, Any]:  # noqa: N803 - boto3's keywords
        known = AlarmNames == [f"{STACK}-dead-letters"]
        return {"MetricAlarms": [{"AlarmName": AlarmNames[0], "AlarmActions": self.actions}] if known else []}

    def set_alarm_state(self, AlarmName: str, StateValue: str, StateReason: str) -> None:  # noqa: N803
        assert "alarm-test" in StateReason
        self.states.append(StateValue)

    def describe_alarm_history(self, AlarmName: str, HistoryItemType: str, StartDate: datetime) -> dict[str, Any]:  # noqa: N803
        assert HistoryItemType == "Action"
        assert StartDate == T0
        self.reads += 1
        if self.reads == self.runs_after and self.states == ["ALARM"]:
            for action in self.actions:
                verb = "Failed to execute" if action in self.failing else "Successfully executed"
                self.history.append(
                    {
                        "HistorySummary": f"{verb} action {action}",
                        "HistoryData": json.dumps(
                            {
                                "actionState": "Failed" if action in self.failing else "Succeeded",
                                "notificationResource": action,
                            }
                        ),
                    }
                )
        return {"AlarmHistoryItems": list(self.history)}


def _args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["--stack", STACK, "alarm-test", "--by", "ops", *extra])


def _run(cloudwatch: FakeCloudWatch, *extra: str) -> tuple[int, str, list[float]]:
    out, waits = StringIO(), list[float]()
    code = run_alarm_command(_args(*extra), out, waits.append, cloudwatch=cloudwatch, now=lambda: T0)
    return code, out.getvalue(), waits


def test_every_action_delivered_is_shown_and_the_alarm_goes_back_to_ok() -> None:
    # Given the dead-letter alarm notifies the stack's topic and a pager topic
    cloudwatch = FakeCloudWatch([TOPIC, PAGER], runs_after=2)
    # When the operator tests it
    code, out, waits = _run(cloudwatch)
    # Then it went to ALARM and back to OK, both actions were run, and the command waited for them
    assert code == 0
    assert cloudwatch.states == ["ALARM", "OK"]
    assert out.count("sent  ") == 2
    assert len(waits) == 2


def test_an_action_cloudwatch_could_not_run_fails_the_test() -> None:
    # Given a topic encrypted with a key CloudWatch may not use
    cloudwatch = FakeCloudWatch([TOPIC, PAGER], failing=frozenset({TOPIC}))
    code, out, _ = _run(cloudwatch, "--json")
    # Then the command says which, exits 1, and still sets the alarm back to OK
    assert code == 1
    rows = {row["action"]: row for row in json.loads(out)["actions"]}
    assert rows[TOPIC]["delivered"] is False
    assert rows[TOPIC]["history"].startswith("Failed to execute action")
    assert rows[PAGER]["delivered"] is True
    assert cloudwatch.states == ["ALARM", "OK"]


def test_an_alarm_that_notifies_nobody_is_not_set_at_all() -> None:
    cloudwatch = FakeCloudWatch([])
    code, out, _ = _run(cloudwatch)
    assert code == 1
    assert "notifies nobody" in out
    assert cloudwatch.states == []


def test_actions_never_run_are_reported_after_the_last_poll() -> None:
    cloudwatch = FakeCloudWatch([TOPIC], runs_after=HISTORY_POLLS + 1)
    code, out, waits = _run(cloudwatch)
    assert code == 1
    assert "no action run recorded yet" in out
    assert len(waits) == HISTORY_POLLS
    assert cloudwatch.states == ["ALARM", "OK"]


def test_an_unknown_alarm_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = _run(FakeCloudWatch([TOPIC]), "--alarm", "nrtsync-prod-no-such")
    assert code == 3
    assert "no alarm nrtsync-prod-no-such" in capsys.readouterr().err


def test_the_local_stack_has_no_alarms(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["--local", "alarm-test"])
    assert run_alarm_command(args, StringIO(), lambda _: None) == 2
    assert "needs --stack" in capsys.readouterr().err
