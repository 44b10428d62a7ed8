"""`make demo` end to end: the changes made in the Zuora stand-in go through the whole local pipeline by the
stand-in's own callouts, the report shows it, and the verification passes; and the same verification fails when
Salesforce's data or Zuora's delivery history is not what the stream made.

One demo run for the module (about 45 s); the tampering happens through the stand-in's control API while
that run's stack is still up (the demo's ``inspect`` hook), after the demo's own verification.
"""

from __future__ import annotations

import copy
import io
import json
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
from nrtsync_local.demo.stream import ACCOUNT_SOBJECT, Change, build_stream
from nrtsync_local.stack import LocalDeployment

pytestmark = pytest.mark.e2e


@dataclass
class Tampered:
    """What the verification said after the stand-in's data was changed behind the sync's back."""

    renamed: str = ""
    planted: str = ""
    problems: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    """The Zuora stand-in's delivery history at the end of the run."""


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
        # An account written by the sync gets another name, and the account the org refuses appears.
        assert stack.standin is not None
        assert stack.zuora is not None
        assert demo.expectation is not None
        tampered.history = stack.zuora.callouts()["history"]
        renamed = demo.stream.highlights["stale"][1]
        [(_, planted)] = demo.stream.refused
        with stack.standin.session() as control:
            answer = control.post(
                f"{stack.standin.url}/__standin/records/{ACCOUNT_SOBJECT}",
                json={
                    "records": [
                        {"Zuora__External_Id__c": renamed, "Name": "Tampered Name Ltd"},
                        # Linked to a Salesforce Account: the org refuses a billing account without one
                        {
                            "Zuora__External_Id__c": planted,
                            "Name": "Planted Ltd",
                            "Zuora__Account__c": "0015g00000XyZ12AAB",
                        },
                    ]
                },
                timeout=5,
            )
        answer.raise_for_status()
        assert [r["success"] for r in answer.json()["results"]] == [True, True]
        tampered.renamed, tampered.planted = renamed, planted
        tampered.problems = verify(demo.expectation, observe(stack, demo.expectation, demo.reconcile))

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
        "== Reconciliation",
        "== Verification",
    ):
        assert heading in output, heading
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in output
    assert "stale" in output
    assert "UNABLE_TO_LOCK_ROW" in output
    # zuora setup ran before the first change, and the demo printed what it made
    assert "`nrtsync --local zuora setup` ran at start-up" in output
    assert output.index("nrtsync-local-Account-update") < output.index("[2/")
    assert len(demo.setup["definitions"]) == 12
    assert {d["callout"]["calloutAuth"]["preemptive"] for d in demo.setup["definitions"]} == {False}
    # The functions' JSON logs went to the log file, not into the report
    assert '"level":' not in output
    assert "sync session" in result.log.read_text()


def test_every_case_of_the_stream_happened(result: Result) -> None:
    outcomes = result.demo.figures["outcomes"]
    assert outcomes["stale_skipped"] >= 1  # the older change delivered after the newer one
    assert outcomes["duplicates"] >= 4  # Zuora's retries of delivered notifications (5; one may share a batch)
    assert outcomes["waiting"] >= 2  # children before parents, the row lock
    assert outcomes["superseded"] >= 1  # quick successive changes coalesced
    # the validation rule: the test account's callout, parked once (reconciliation finds its version settled)
    assert outcomes["failed"] == 1
    # Batching: fewer API calls than records written; latencies by Zuora's percentile rule exist
    assert 0 < result.demo.figures["api_calls"] < result.demo.figures["written"]
    for name in ("sync_ms", "e2e_ms"):
        p50, p90 = result.demo.figures[name][50], result.demo.figures[name][90]
        assert p50 is not None
        assert p90 is not None
        assert 0 <= p50 <= p90
    # Zuora's side, from the stand-in's history: every attempt that reached the endpoint was challenged first and
    # none was refused; the faults made late callouts, duplicates and give-ups, and nothing else failed
    attempts = result.demo.attempts
    reached = [a for a in attempts if a.reached_endpoint]
    assert reached
    assert all(a.challenged for a in reached)
    assert all(a.status in (None, 200) for a in attempts)
    calls = result.demo.figures["callouts"]
    assert calls[1]["no_answer"] == 3  # the three accounts whose callouts came after their children's
    assert calls[2]["answer_lost"] == 5  # Zuora retries of delivered notifications
    assert calls[5]["given_up"] == len(result.demo.stream.lost)
    assert sum(c["given_up"] for c in calls.values()) == len(result.demo.stream.lost)
    assert sum(c["notifications"] for c in calls.values()) == len(result.demo.stream.changes)


def test_every_callout_the_ingest_saw_was_sent_by_the_zuora_standin(result: Result) -> None:
    # Given the ids of the notifications the ingest function queued (its "callout queued" log lines)
    lines = [json.loads(line) for line in result.log.read_text().splitlines() if line.startswith("{")]
    queued = [line["notification_id"] for line in lines if line.get("message") == "callout queued"]
    history = result.tampered.history
    delivered = {row["notification_id"] for row in history if row["delivered"]}
    answered = [row for row in history if row["delivered"] or row["endpoint_status"] == 200]

    # Then each is a notification of the stand-in's history, and the ingest queued exactly the attempts that reached
    # it and were answered 200 (a lost answer's attempt included): nothing else posted a callout
    assert queued
    assert set(queued) <= {row["notification_id"] for row in history}
    assert sorted(queued) == sorted(row["notification_id"] for row in answered)
    assert set(queued) == delivered


def test_the_verification_fails_when_salesforce_was_tampered_with(result: Result) -> None:
    tampered = result.tampered
    problems = "\n".join(tampered.problems)
    assert f"{tampered.renamed} (" in problems
    assert "Name expected" in problems
    assert "'Tampered Name Ltd'" in problems
    assert f"{tampered.planted}: in Salesforce but must not be (refused by the org)" in problems
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
    ext = demo.expectation.external_id_field[sobject]  # a subscription's number: one record for all its versions

    # An expectation with another name for one subscription
    wrong = copy.deepcopy(demo.expectation)
    wrong.records[sobject][record_id] = ExpectedRecord(
        wanted.label, wanted.fields | {"Name": "A-S99999999"}, wanted.lookups
    )
    assert any(f"{record_id} (" in p and "Name expected 'A-S99999999'" in p for p in verify(wrong, demo.observation))

    # Salesforce missing that subscription, the queue not drained, a failure not on the list
    observation = copy.deepcopy(demo.observation)
    observation.records[sobject] = [r for r in observation.records[sobject] if r[ext] != record_id]
    observation.queue = {"visible": 1, "in_flight": 0, "delayed": 0}
    observation.failures = []
    problems = verify(demo.expectation, observation)
    assert any(record_id in p and "missing in Salesforce" in p for p in problems)
    assert any("callout queue not empty" in p for p in problems)
    assert any(p.startswith("failure list:") and "missing" in p for p in problems)

    # A parent lookup pointing elsewhere
    observation = copy.deepcopy(demo.observation)
    subscription = next(r for r in observation.records[sobject] if r[ext] == record_id)
    subscription["Zuora__CustomerAccount__c"] = "a0X000000000000AAA"
    assert any("Zuora__CustomerAccount__c expected the Id of" in p for p in verify(demo.expectation, observation))

    # Zuora's history: an attempt refused, a delivery missing, a callout no change made, a challenge skipped
    observation = copy.deepcopy(demo.observation)
    index = next(i for i, a in enumerate(observation.attempts) if a.delivered and a.attempt == 1)
    first = observation.attempts[index]
    observation.attempts[index] = replace(first, status=503, delivered=False, final=True)
    problems = verify(demo.expectation, observation)
    assert any(first.record_id in p and "answered attempt 1 with HTTP 503" in p for p in problems)
    assert any(first.record_id in p and "never reached the endpoint" in p for p in problems)
    observation = copy.deepcopy(demo.observation)
    observation.attempts.append(replace(first, record_id="8ad09be4ffffffffffffffffffffffff", notification_id="x"))
    assert any("a callout no change of the stream made" in p for p in verify(demo.expectation, observation))
    observation = copy.deepcopy(demo.observation)
    observation.attempts[index] = replace(first, challenged=False)
    assert any("without a 401 challenge" in p for p in verify(demo.expectation, observation))
    # ... and a callout Zuora should have given up on that was delivered
    observation = copy.deepcopy(demo.observation)
    lost = {record_id for _, record_id in demo.stream.lost}
    observation.attempts = [replace(a, delivered=True) if a.record_id in lost else a for a in observation.attempts]
    assert sum("expected Zuora to give up" in p for p in verify(demo.expectation, observation)) == len(lost)


def test_reconciliation_recovered_exactly_the_lost_changes_and_the_delete_reached_salesforce(result: Result) -> None:
    demo, output = result.demo, result.output
    stream, observation, expectation = demo.stream, demo.observation, demo.expectation
    assert observation is not None
    assert expectation is not None
    # The sweep read the whole tenant and queued the 4 lost changes, not the refused account (on the failure list)
    assert len(stream.lost) == 4
    assert {object_type for object_type, _ in stream.lost} == {"Account", "Invoice"}
    assert expectation.recovered == stream.lost
    assert demo.reconcile is not None
    assert demo.reconcile["queued"] == len(stream.lost), demo.reconcile
    assert demo.reconcile["read"] == sum(len(records) for records in observation.records.values()) + 1
    assert observation.reconciled == expectation.recovered
    # ... and writing them took one Salesforce call (or two, if the sync's batches split): none for the others
    assert 1 <= demo.figures["reconcile_api_calls"] <= 2
    # Each lost change is in Salesforce with its newest version (the verification's record check passed)
    for object_type, record_id in stream.lost:
        sobject = "Zuora__CustomerAccount__c" if object_type == "Account" else "Zuora__ZInvoice__c"
        assert record_id in {r["Zuora__External_Id__c"] for r in observation.records[sobject]}
    # The deleted account is gone from Salesforce, and the report shows the recovered trail and the delete
    [(deleted_type, deleted_id)] = stream.deleted
    assert deleted_type == "Account"
    assert deleted_id not in {r["Zuora__External_Id__c"] for r in observation.records[ACCOUNT_SOBJECT]}
    assert demo.figures["deleted_present"] is False
    assert "written     reconcile" in output
    assert "absent (deleted)" in output
    assert "Callouts Zuora gives up on (no attempt answered)" in output


def test_the_verification_fails_when_reconciliation_did_less_or_more_or_a_delete_was_missed(result: Result) -> None:
    demo = result.demo
    assert demo.expectation is not None
    assert demo.observation is not None

    # The sweep queued one change too many
    observation = copy.deepcopy(demo.observation)
    assert observation.reconcile is not None
    observation.reconcile["queued"] += 1
    assert any(
        "reconciliation queued 5 change(s), expected exactly 4" in p for p in verify(demo.expectation, observation)
    )

    # A lost change that was not queued by reconciliation (came some other way)
    observation = copy.deepcopy(demo.observation)
    missed = sorted(demo.stream.lost)[0]
    observation.reconciled.discard(missed)
    assert any(f"{missed[1]}: not queued by reconciliation" in p for p in verify(demo.expectation, observation))

    # The deleted record still in Salesforce
    observation = copy.deepcopy(demo.observation)
    [(_, deleted_id)] = demo.stream.deleted
    observation.records[ACCOUNT_SOBJECT].append({"Zuora__External_Id__c": deleted_id, "Name": "Back from the dead"})
    assert any(
        f"{deleted_id}: in Salesforce but must not be (deleted in Zuora)" in p
        for p in verify(demo.expectation, observation)
    )


def test_a_demo_that_skips_reconciliation_fails_naming_the_records_left_behind() -> None:
    out = io.StringIO()
    demo = run_demo(DemoOptions(accounts=8, reconcile=False), out=out, err=io.StringIO())
    output = out.getvalue()

    assert demo.exit_code == EXIT_MISMATCH, output
    assert demo.reconcile is None
    problems = "\n".join(demo.problems)
    for _object_type, record_id in demo.stream.lost:
        assert record_id in problems, problems
    assert "reconciliation did not run" in problems
    assert "RESULT: FAILED" in output
    # The delete did not need reconciliation: it is not among the differences
    [(_, deleted_id)] = demo.stream.deleted
    assert deleted_id not in problems


def test_the_stream_is_deterministic_and_has_every_case() -> None:
    first, second = build_stream(accounts=20, seed=3), build_stream(accounts=20, seed=3)

    def shape(stream: Any) -> list[tuple[str, str, str]]:
        return [(c.version.object_type, c.version.record_id, c.fault) for c in stream.changes]

    assert shape(first) == shape(second)
    changes = first.changes
    assert all(isinstance(c, Change) for c in changes)
    notes = {c.note for c in changes}
    assert "child before its parent" in notes
    faults = [(c.version.object_type, c.fault) for c in changes if c.fault]
    # the three accounts whose callouts come after their children's, and the older change delivered after a newer
    assert sorted(f for f in faults if f[1] == "late") == [("Account", "late")] * 4
    assert sum(1 for f in faults if f[1] == "duplicated") == 5
    # a late account's children are made after it (Zuora has no child without its parent), in the same phase
    phase_1 = first.phases[0].steps
    assert [c.version.object_type for c in phase_1[:3]] == ["Account", "Subscription", "Invoice"]
    assert phase_1[0].fault == "late"
    # 20 customer accounts, the refused test account, the duplicate account later deleted, and the account that
    # gains its CRM link after it was held
    assert len({c.version.record_id for c in changes if c.version.object_type == "Account"}) == 20 + 3
    linked = [c.version for c in changes if c.version.key == first.highlights["linked"]]
    assert [bool(v.fields["CrmId"]) for v in linked] == [False, True]
    # An amendment: version 2 with a new Id, then version 1 Expired, both under one subscription number
    number = first.highlights["amended"][1]
    amended = [
        c.version for c in changes if c.version.object_type == "Subscription" and c.version.fields["Name"] == number
    ]
    assert [(v.fields["Version"], v.fields["Status"]) for v in amended][-2:] == [("2", "Active"), ("1", "Expired")]
    assert len({v.record_id for v in amended}) == 2
    # The changes Zuora gives up on, and the delete, last
    lost = [c for c in changes if c.fault == "given_up"]
    assert sorted(c.version.object_type for c in lost) == ["Account", "Account", "Account", "Invoice"]
    assert {c.version.key for c in lost} == first.lost
    [delete] = [c for c in changes if c.version.deleted]
    assert first.deleted == {delete.version.key}
    assert first.phases[-1].steps[-1] == delete
    with pytest.raises(ValueError, match="at least 8"):
        build_stream(accounts=3)
