"""`make demo` end to end: the stream goes through the whole local pipeline, the report shows it, and the
verification passes; and the same verification fails when Salesforce's data is not what was sent.

One demo run for the module (about 20-40 s); the tampering happens through the stand-in's control API while
that run's stack is still up (the demo's ``inspect`` hook), after the demo's own verification.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
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
from nrtsync_local.demo.stream import ACCOUNT_SOBJECT, Deliver, GiveUp, Invalid, build_stream
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
                        # Linked to a Salesforce Account: the org refuses a billing account without one
                        {
                            "Zuora__External_Id__c": planted,
                            "Name": "Ghost Traders Ltd",
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
    # The functions' JSON logs went to the log file, not into the report
    assert '"level":' not in output
    assert "sync session" in result.log.read_text()


def test_every_case_of_the_stream_happened(result: Result) -> None:
    outcomes = result.demo.figures["outcomes"]
    assert outcomes["stale_skipped"] >= 1  # the older change delivered after the newer one
    assert outcomes["duplicates"] >= 3  # Zuora's late retries at least
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

    # A callout answered differently than expected
    expectation = copy.deepcopy(demo.expectation)
    expectation.answers[0] = replace(expectation.answers[0], status=503)
    assert any("HTTP 503, expected" in p for p in verify(expectation, demo.observation))


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
    assert "Callouts Zuora gave up on after its last retry" in output


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
        return [(v.object_type, v.record_id, v.notification_id) for v in stream.versions]

    assert shape(first) == shape(second)
    steps = [step for phase in first.phases for step in phase.steps]
    deliveries = [s for s in steps if isinstance(s, Deliver)]
    notes = {s.note for s in deliveries}
    assert "child before its parent" in notes
    assert "older change delivered after a newer one" in notes
    assert any("retry" in note.lower() for note in notes)
    assert sorted(s.expected_status for s in steps if isinstance(s, Invalid)) == [400, 401, 422, 422, 422]
    # 20 customer accounts, the refused test account, the duplicate account later deleted, and the account that
    # gains its CRM link after it was held
    assert len({s.version.record_id for s in deliveries if s.version.object_type == "Account"}) == 20 + 3
    linked = [s.version for s in deliveries if s.version.key == first.highlights["linked"]]
    assert [bool(v.fields["CrmId"]) for v in linked] == [False, True]
    # An amendment: version 2 with a new Id, then version 1 Expired, both under one subscription number
    number = first.highlights["amended"][1]
    amended = [
        s.version for s in deliveries if s.version.object_type == "Subscription" and s.version.fields["Name"] == number
    ]
    assert [(v.fields["Version"], v.fields["Status"]) for v in amended][-2:] == [("2", "Active"), ("1", "Expired")]
    assert len({v.record_id for v in amended}) == 2
    # The lost changes happen in Zuora only; the delete's callout is the delete event's
    lost = [s for s in steps if isinstance(s, GiveUp)]
    assert sorted(s.version.object_type for s in lost) == ["Account", "Account", "Account", "Invoice"]
    assert {s.version.key for s in lost} == first.lost
    [delete] = [s for s in deliveries if s.version.deleted]
    assert first.deleted == {delete.version.key}
    assert first.phases[-1].steps[-1] == delete
    document = replace(delete.version, updated_date=datetime.now(UTC)).document()
    assert (document["eventType"], document["changeType"]) == ("NrtsyncAccountDeleted", "DELETE")
    assert "fields" not in document
    with pytest.raises(ValueError, match="at least 8"):
        build_stream(accounts=3)
