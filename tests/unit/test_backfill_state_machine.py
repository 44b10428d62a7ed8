"""The backfill state machine (statemachine/backfill.asl.json) against what the backfill function answers.

Walks the Choice state with every status ``BackfillStatus`` has, so a renamed or added status breaks here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nrtsync.ports.backfill import BackfillStatus
from nrtsync.services.backfill.step import StepRefused
from nrtsync_cli.backfill_commands import BackfillTarget, execution_status
from nrtsync_local.template import load_template
from tests.support.backfill_world import BackfillWorld

ROOT = Path(__file__).resolve().parents[2]
DEFINITION: dict[str, Any] = json.loads((ROOT / "statemachine" / "backfill.asl.json").read_text(encoding="utf-8"))
STATES: dict[str, Any] = DEFINITION["States"]


def _matches(rule: dict[str, Any], data: dict[str, Any]) -> bool:
    """One Choice rule (And, Or, StringEquals, NumericGreaterThanEquals) against the state's data."""
    if "And" in rule:
        return all(_matches(inner, data) for inner in rule["And"])
    if "Or" in rule:
        return any(_matches(inner, data) for inner in rule["Or"])
    value: Any = data
    for key in rule["Variable"].removeprefix("$.").split("."):
        value = value[key]
    if "StringEquals" in rule:
        return bool(value == rule["StringEquals"])
    return bool(value >= rule["NumericGreaterThanEquals"])


def _after_step(output: dict[str, Any], loops: int = 1) -> list[str]:
    """The states the execution passes after the Step task returns ``output`` on loop ``loops``, until it is
    back at Step or ends."""
    assert STATES["Step"]["ResultSelector"] == {"payload.$": "$.Payload"}
    assert STATES[STATES["Step"]["Next"]]["Parameters"]["answer.$"] == "$.answer.payload"
    data = {"run_id": output.get("run_id"), "loops": loops, "answer": output}
    state_name = STATES["Step"]["Next"]
    path = []
    while True:
        path.append(state_name)
        state = STATES[state_name]
        if state["Type"] == "Choice":
            matching = [rule["Next"] for rule in state["Choices"] if _matches(rule, data)]
            state_name = matching[0] if matching else state["Default"]
        elif state["Type"] in {"Succeed", "Fail"} or state_name == "Step":
            return path
        else:
            state_name = state["Next"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (BackfillStatus.RUNNING, ["Count", "Status", "Step"]),
        (BackfillStatus.WAITING, ["Count", "Status", "Wait", "Step"]),
        (BackfillStatus.DONE, ["Count", "Status", "Done"]),
        (BackfillStatus.FAILED, ["Count", "Status", "Failed"]),
    ],
)
def test_every_status_the_function_answers_leads_where_it_must(status: BackfillStatus, expected: list[str]) -> None:
    assert _after_step({"status": status.value, "wait_seconds": 5}) == expected


def test_the_choice_state_knows_exactly_the_statuses_the_function_answers() -> None:
    rules = {rule["StringEquals"] for rule in STATES["Status"]["Choices"] if "StringEquals" in rule}
    assert rules == {status.value for status in BackfillStatus}
    assert STATES[STATES["Status"]["Default"]]["Type"] == "Fail"  # an unknown answer never loops


def test_the_function_payload_carries_what_the_states_read() -> None:
    # Given a real step's answer (a paused run) and the answer for a run that cannot be stepped
    world = BackfillWorld()
    run = world.admin.create(["Account"])
    world.pacer.breaker_open = True
    waiting = world.service.run(run.run_id, deadline=1e12).as_dict()
    # Then the Choice reads status, the Wait state reads wait_seconds, and Step's input passes run_id on
    assert _after_step(waiting) == ["Count", "Status", "Wait", "Step"]
    assert STATES["Wait"]["SecondsPath"] == "$.answer.wait_seconds"
    assert waiting["wait_seconds"] == world.service.pacing.wait_seconds > 0
    assert STATES["Step"]["Parameters"]["Payload"] == {"run_id.$": "$.run_id"}
    assert set(waiting) >= {"run_id", "status", "wait_seconds"}
    assert _after_step(StepRefused("x", "no backfill run x").as_dict()) == ["Count", "Status", "Failed"]


def test_the_step_is_retried_on_lambda_service_errors_and_timeouts() -> None:
    [retry] = STATES["Step"]["Retry"]
    assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "States.Timeout"} <= set(retry["ErrorEquals"])
    # A task timeout longer than the function's own (900 s), so only a lost invocation hits it
    assert STATES["Step"]["TimeoutSeconds"] > 900


def test_the_template_deploys_this_definition_with_the_function_it_invokes() -> None:
    template = load_template()
    machine = template["Resources"]["BackfillStateMachine"]["Properties"]
    assert machine["DefinitionUri"] == "statemachine/backfill.asl.json"
    assert machine["Type"] == "STANDARD"
    assert machine["DefinitionSubstitutions"] == {
        "BackfillFunctionArn": {"Fn::GetAtt": ["BackfillFunction", "Arn"]},
        "Partition": {"Ref": "AWS::Partition"},
    }
    assert "${BackfillFunctionArn}" in json.dumps(STATES["Step"])
    assert machine["Policies"][0] == {"LambdaInvokePolicy": {"FunctionName": {"Ref": "BackfillFunction"}}}
    assert template["Resources"]["BackfillFunction"]["Properties"]["Timeout"] == 900
    assert template["Outputs"]["BackfillStateMachineArn"]["Value"] == {"Ref": "BackfillStateMachine"}


# A Standard execution stops at 25,000 history events (Step Functions service quotas). Per loop: the Task's 5
# events (entered, scheduled, started, succeeded, exited), the Count Pass's 2 and the Choice's 2; the Wait's 2.
HISTORY_LIMIT = 25_000
EVENTS_PER_WAITING_LOOP = 5 + 2 + 2 + 2
# Each step may be retried up to MaxAttempts times (failed, scheduled, started: 3 events each); keep room for
# a retried step in one loop out of ten.
RETRY_EVENTS = 3 * STATES["Step"]["Retry"][0]["MaxAttempts"]


def _loop_bound() -> int:
    [bound] = [
        inner["NumericGreaterThanEquals"]
        for rule in STATES["Status"]["Choices"]
        for inner in rule.get("And", [])
        if inner.get("Variable") == "$.loops"
    ]
    return int(bound)


@pytest.mark.parametrize("status", [BackfillStatus.RUNNING, BackfillStatus.WAITING])
def test_an_unfinished_run_continues_in_a_new_execution_after_the_loop_bound(status: BackfillStatus) -> None:
    # Given a run still running or paused when the execution has looped its bound
    output = {"run_id": "r1", "status": status.value, "wait_seconds": 5}
    # Then it starts a new execution of the same state machine on the same run and ends this one
    assert _after_step(output, loops=_loop_bound()) == ["Count", "Status", "Continue", "Continued"]
    assert _after_step(output, loops=_loop_bound() - 1)[-1] == "Step"
    continue_state = STATES["Continue"]
    assert continue_state["Resource"] == "arn:${Partition}:states:::states:startExecution"
    assert continue_state["Parameters"]["StateMachineArn.$"] == "$$.StateMachine.Id"
    assert continue_state["Parameters"]["Input"]["run_id.$"] == "$.run_id"
    # A run that ends on the bound's loop still ends: only unfinished runs continue
    assert _after_step({"run_id": "r1", "status": "done"}, loops=_loop_bound()) == ["Count", "Status", "Done"]


def test_the_loop_bound_keeps_an_execution_under_the_history_limit() -> None:
    bound = _loop_bound()
    worst = 2 + bound * (EVENTS_PER_WAITING_LOOP + RETRY_EVENTS / 10) + 5 + 2
    assert worst < HISTORY_LIMIT
    # And each execution starts counting at 0: a continuation has the whole bound again
    assert STATES[DEFINITION["StartAt"]]["Parameters"] == {"run_id.$": "$.run_id", "loops": 0}
    assert STATES["Count"]["Parameters"]["loops.$"] == "States.MathAdd($.loops, 1)"


def test_the_state_machine_may_start_only_itself() -> None:
    template = load_template()
    machine = template["Resources"]["BackfillStateMachine"]["Properties"]
    starts = [
        statement
        for policy in machine["Policies"]
        for statement in policy.get("Statement", [])
        if "states:StartExecution" in statement["Action"]
    ]
    assert [statement["Resource"]["Fn::Sub"] for statement in starts] == [
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:" + machine["Name"]["Fn::Sub"]
    ]


def test_no_partition_is_written_into_the_definition() -> None:
    text = (ROOT / "statemachine" / "backfill.asl.json").read_text(encoding="utf-8")
    assert "arn:aws:" not in text
    assert all(state["Resource"].startswith("arn:${Partition}:") for state in STATES.values() if "Resource" in state)


class _Executions:
    """Step Functions' DescribeExecution over a fixed set of executions (status, output)."""

    def __init__(self, executions: dict[str, tuple[str, dict[str, Any] | None]]) -> None:
        self._executions = executions
        self.described: list[str] = []

    def describe_execution(self, executionArn: str) -> dict[str, Any]:  # noqa: N803 - boto3's keyword
        self.described.append(executionArn)
        status, output = self._executions[executionArn]
        return {"status": status} | ({"output": json.dumps(output)} if output is not None else {})


def _target(executions: _Executions) -> BackfillTarget:
    return BackfillTarget("state", "https://queue", lambda _name: executions, state_machine_arn="arn:sm")


def test_the_cli_follows_an_execution_into_its_continuations() -> None:
    # Given an execution that continued in a second, which continued in a third, still running
    executions = _Executions(
        {
            "e1": ("SUCCEEDED", {"continued_in": "e2"}),
            "e2": ("SUCCEEDED", {"continued_in": "e3"}),
            "e3": ("RUNNING", None),
        }
    )
    status = execution_status(_target(executions), "e1")
    # When the CLI reads the status twice
    # Then it is the last continuation's, and the second read starts where the first ended
    assert status() == "RUNNING"
    assert status() == "RUNNING"
    assert executions.described == ["e1", "e2", "e3", "e3"]


def test_an_execution_that_ended_without_a_continuation_keeps_its_own_status() -> None:
    executions = _Executions({"e1": ("SUCCEEDED", {"run_id": "r1"}), "e2": ("FAILED", None)})
    assert execution_status(_target(executions), "e1")() == "SUCCEEDED"
    assert execution_status(_target(executions), "e2")() == "FAILED"
