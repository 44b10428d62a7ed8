"""`make demo` end to end: the stream goes through the whole local pipeline, the report shows it, and the
verification passes; and the same verification fails when Salesforce's data is not what was sent.

One demo run for the module (about 20-40 s); the tampering happens through the stand-in's control API while
that run's stack is still up (the demo's ``inspect`` hook), after the demo's own verification.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from nrtsync_local.demo import (
    EXIT_MISMATCH,
    EXIT_OK,
    DemoOptions,
    DemoRun,
    ExpectedRecord,
    observe,
    print_verdict,
    run_demo,
    verify,
)
from nrtsync_local.demo.stream import ACCOUNT_SOBJECT, Deliver, Invalid, build_stream
from nrtsync_local.stack import LocalDeployment

pytestmark = pytest.mark.e2e


@dataclass
class Tampered:
    """What the verification said after the stand-in's data was changed behind the sync's back."""

    renamed: str = ""
    planted: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class Result:
    demo: DemoRun
    output: str
    tampered: Tampered
    log: Path


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Result:
    log = tmp_path_factory.mktemp("demo") / "functions.log"
    tampered = Tampered()

    def tamper(stack: LocalDeployment, demo: DemoRun) -> None:
        # An account written by the sync gets another name, and a record that was only ever sent invalid appears.
        assert stack.standin is not None
        assert demo.expectation is not None
        renamed = demo.stream.highlights["stale"][1]
        planted = next(record_id for object_type, record_id in demo.stream.invalid_only if object_type == "Account")
        with stack.standin.session() as control:
            answer = control.post(
                f"{stack.standin.url}/__standin/records/{ACCOUNT_SOBJECT}",
                json={
                    "records": [
                        {"Zuora__External_Id__c": renamed, "Name": "Tampered Name Ltd"},
                        {"Zuora__External_Id__c": planted, "Name": "Ghost Traders Ltd"},
                    ]
                },
                timeout=5,
            )
        answer.raise_for_status()
        tampered.renamed, tampered.planted = renamed, planted
        tampered.problems = verify(demo.expectation, observe(stack, demo.expectation))

    out = io.StringIO()
    demo = run_demo(DemoOptions(accounts=20, log=log), out=out, err=io.StringIO(), inspect=tamper)
    return Result(demo, out.getvalue(), tampered, log)


def test_the_demo_syncs_the_whole_stream_and_verifies_it(result: Result) -> None:
    demo, output = result.demo, result.output
    assert demo.exit_code == EXIT_OK, output
    assert demo.problems == []
    assert output.rstrip().endswith("RESULT: OK")
    # Every section of the report is there
    for heading in (
        "== Callouts",
        "== Sync History",
        "== Failure list",
        "== Trail of Account",
        "== Latency of every written record",
        "== Salesforce API calls",
        "== Verification",
    ):
        assert heading in output, heading
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in output
    assert "stale" in output
    assert "UNABLE_TO_LOCK_ROW" in output
    # The functions' JSON logs went to the log file, not into the report
    assert '"level":' not in output
    assert "sync session" in result.log.read_text()


def test_every_case_of_the_stream_happened(result: Result) -> None:
    outcomes = result.demo.figures["outcomes"]
    assert outcomes["stale_skipped"] >= 1  # the older change delivered after the newer one
    assert outcomes["duplicates"] >= 3  # Zuora's late retries at least
    assert outcomes["waiting"] >= 2  # children before parents, the row lock
    assert outcomes["superseded"] >= 1  # quick successive changes coalesced
    assert outcomes["failed"] == 1  # the validation rule
    # Batching: fewer API calls than records written; latencies by the brief's rule exist
    assert 0 < result.demo.figures["api_calls"] < result.demo.figures["written"]
    for name in ("sync_ms", "e2e_ms"):
        p50, p90 = result.demo.figures[name][50], result.demo.figures[name][90]
        assert p50 is not None
        assert p90 is not None
        assert 0 <= p50 <= p90
    # Each invalid callout got its 4xx, and only those were refused
    answers = result.demo.answers
    refused = {a.what: a.status for a in answers if a.status != 200}
    assert sorted(refused.values()) == [400, 401, 401, 422, 422, 422]
    assert all(a.as_expected for a in answers)


def test_the_verification_fails_when_salesforce_was_tampered_with(result: Result) -> None:
    tampered = result.tampered
    problems = "\n".join(tampered.problems)
    assert f"{tampered.renamed} (" in problems
    assert "Name expected" in problems
    assert "'Tampered Name Ltd'" in problems
    assert f"{tampered.planted}: in Salesforce but must not be (refused or only ever sent invalid)" in problems
    assert len(tampered.problems) == 2, problems

    # And the verdict is the diff and exit status 1
    out = io.StringIO()
    assert print_verdict(tampered.problems, out) == EXIT_MISMATCH
    assert out.getvalue().startswith("RESULT: FAILED, 2 difference(s)")


def test_the_verification_fails_on_a_wrong_expectation_or_missing_data(result: Result) -> None:
    demo = result.demo
    assert demo.expectation is not None
    assert demo.observation is not None
    sobject = "Zuora__Subscription__c"
    record_id, wanted = next(iter(demo.expectation.records[sobject].items()))

    # An expectation with another name for one subscription
    wrong = copy.deepcopy(demo.expectation)
    wrong.records[sobject][record_id] = ExpectedRecord(
        wanted.label, wanted.fields | {"Name": "A-S99999999"}, wanted.lookups
    )
    assert any(f"{record_id} (" in p and "Name expected 'A-S99999999'" in p for p in verify(wrong, demo.observation))

    # Salesforce missing that subscription, the queue not drained, a failure not on the list
    observation = copy.deepcopy(demo.observation)
    observation.records[sobject] = [r for r in observation.records[sobject] if r["Zuora__External_Id__c"] != record_id]
    observation.queue = {"visible": 1, "in_flight": 0, "delayed": 0}
    observation.failures = []
    problems = verify(demo.expectation, observation)
    assert any(record_id in p and "missing in Salesforce" in p for p in problems)
    assert any("callout queue not empty" in p for p in problems)
    assert any(p.startswith("failure list:") and "missing" in p for p in problems)

    # A parent lookup pointing elsewhere
    observation = copy.deepcopy(demo.observation)
    subscription = next(r for r in observation.records[sobject] if r["Zuora__External_Id__c"] == record_id)
    subscription["Zuora__CustomerAccount__c"] = "a0X000000000000AAA"
    assert any("Zuora__CustomerAccount__c expected the Id of" in p for p in verify(demo.expectation, observation))

    # A callout answered differently than expected
    expectation = copy.deepcopy(demo.expectation)
    expectation.answers[0] = replace(expectation.answers[0], status=503)
    assert any("HTTP 503, expected" in p for p in verify(expectation, demo.observation))


def test_the_stream_is_deterministic_and_has_every_case() -> None:
    first, second = build_stream(accounts=20, seed=3), build_stream(accounts=20, seed=3)

    def shape(stream: Any) -> list[tuple[str, str, str]]:
        return [(v.object_type, v.record_id, v.notification_id) for v in stream.versions]

    assert shape(first) == shape(second)
    steps = [step for phase in first.phases for step in phase.steps]
    deliveries = [s for s in steps if isinstance(s, Deliver)]
    notes = {s.note for s in deliveries}
    assert "child before its parent" in notes
    assert "older change delivered after a newer one" in notes
    assert any("retry" in note.lower() for note in notes)
    assert sorted(s.expected_status for s in steps if isinstance(s, Invalid)) == [400, 401, 422, 422, 422]
    assert len({s.version.record_id for s in deliveries if s.version.object_type == "Account"}) == 20 + 1
    with pytest.raises(ValueError, match="at least 8"):
        build_stream(accounts=3)
