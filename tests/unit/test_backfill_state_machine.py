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
from nrtsync_local.template import load_template
from tests.support.backfill_world import BackfillWorld

ROOT = Path(__file__).resolve().parents[2]
DEFINITION: dict[str, Any] = json.loads((ROOT / "statemachine" / "backfill.asl.json").read_text(encoding="utf-8"))
STATES: dict[str, Any] = DEFINITION["States"]


def _after_step(output: dict[str, Any]) -> list[str]:
    """The states the execution passes after the Step task returns ``output``, until it is back at Step or ends."""
    state_name = STATES["Step"]["Next"]
    path = []
    while True:
        path.append(state_name)
        state = STATES[state_name]
        if state["Type"] == "Choice":
            variable_matches = [
                rule["Next"]
                for rule in state["Choices"]
                if output[rule["Variable"].removeprefix("$.")] == rule["StringEquals"]
            ]
            state_name = variable_matches[0] if variable_matches else state["Default"]
        elif state["Type"] in {"Succeed", "Fail"} or state_name == "Step":
            return path
        else:
            state_name = state["Next"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (BackfillStatus.RUNNING, ["Status", "Step"]),
        (BackfillStatus.WAITING, ["Status", "Wait", "Step"]),
        (BackfillStatus.DONE, ["Status", "Done"]),
        (BackfillStatus.FAILED, ["Status", "Failed"]),
    ],
)
def test_every_status_the_function_answers_leads_where_it_must(status: BackfillStatus, expected: list[str]) -> None:
    assert _after_step({"status": status.value, "wait_seconds": 5}) == expected


def test_the_choice_state_knows_exactly_the_statuses_the_function_answers() -> None:
    rules = {rule["StringEquals"] for rule in STATES["Status"]["Choices"]}
    assert rules == {status.value for status in BackfillStatus}
    assert STATES[STATES["Status"]["Default"]]["Type"] == "Fail"  # an unknown answer never loops


def test_the_function_payload_carries_what_the_states_read() -> None:
    # Given a real step's answer (a paused run) and the answer for a run that cannot be stepped
    world = BackfillWorld()
    run = world.admin.create(["Account"])
    world.pacer.breaker_open = True
    waiting = world.service.run(run.run_id, deadline=1e12).as_dict()
    # Then the Choice reads status, the Wait state reads wait_seconds, and Step's input passes run_id on
    assert _after_step(waiting) == ["Status", "Wait", "Step"]
    assert STATES["Wait"]["SecondsPath"] == "$.wait_seconds"
    assert waiting["wait_seconds"] == world.service.pacing.wait_seconds > 0
    assert STATES["Step"]["Parameters"]["Payload"] == {"run_id.$": "$.run_id"}
    assert set(waiting) >= {"run_id", "status", "wait_seconds"}
    assert _after_step(StepRefused("x", "no backfill run x").as_dict()) == ["Status", "Failed"]


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
    assert machine["DefinitionSubstitutions"] == {"BackfillFunctionArn": {"Fn::GetAtt": ["BackfillFunction", "Arn"]}}
    assert "${BackfillFunctionArn}" in json.dumps(STATES["Step"])
    assert machine["Policies"][0] == {"LambdaInvokePolicy": {"FunctionName": {"Ref": "BackfillFunction"}}}
    assert template["Resources"]["BackfillFunction"]["Properties"]["Timeout"] == 900
    assert template["Outputs"]["BackfillStateMachineArn"]["Value"] == {"Ref": "BackfillStateMachine"}
