"""The reconcile handler end to end: moto in-process (state table, callout queue, the Zuora secret) and the HTTPS
Zuora stand-in as a child process; what reached the queue, the state table's watermark, and the EMF output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.reconcile import app
from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints
from nrtsync.app.reconcile import build_reconcile
from nrtsync.app.shared import build_zuora_from_secret
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.observability.names import RECONCILE_RECORDS_READ, RECOVERED_BY_RECONCILIATION
from nrtsync.services.reconcile.service import RECONCILE_SWEEP, ReconcileError
from nrtsync.services.reconcile.settings import ReconcileSettings
from nrtsync_cli.backfill_commands import BackfillTarget
from nrtsync_cli.cli import build_parser
from nrtsync_cli.reconcile_command import run_reconcile_command, scheduled_event
from nrtsync_local.standin.process import ZuoraStandinClient
from tests.support.lambda_context import FakeLambdaContext
from tests.support.sync_world import STATE_TABLE, create_tables
from tests.support.zuora import running_zuora_standin

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
EVENT = json.loads((Path(__file__).parents[2] / "events" / "scheduled_reconcile.json").read_text())


class ReconcileContext(FakeLambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 600_000


@pytest.fixture(scope="module")
def standin() -> Iterator[ZuoraStandinClient]:
    with running_zuora_standin() as client:
        yield client


@pytest.fixture
def aws(standin: ZuoraStandinClient) -> Iterator[dict[str, Any]]:
    standin.reset()
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_tables(dynamodb)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="callouts")["QueueUrl"]
        secret = {"base_url": standin.url, "client_id": standin.client_id, "client_secret": standin.client_secret}
        boto3.client("secretsmanager", region_name=REGION).create_secret(Name="zuora", SecretString=json.dumps(secret))
        settings = ReconcileSettings.from_env(
            {"CALLOUT_QUEUE_URL": queue_url, "SYNC_STATE_TABLE": STATE_TABLE, "ZUORA_SECRET_ID": "zuora"}
        )
        # The Zuora client as production builds it from the secret, over a session that trusts the stand-in's CA.
        zuora = build_zuora_from_secret(settings, session=standin.session())
        app.service.use(build_reconcile(settings, zuora=zuora))
        try:
            yield {"dynamodb": dynamodb, "sqs": sqs, "queue_url": queue_url}
        finally:
            app.service.use(None)


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in messages]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    return bodies


def emf(output: str) -> dict[str, float]:
    """Every EMF metric value printed, by name (one data point per run here)."""
    values: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values[metric["Name"]] = value[0] if isinstance(value, list) else value
    return values


def test_a_scheduled_run_queues_only_what_the_state_table_lacks_and_counts_it(
    aws: dict[str, Any], standin: ZuoraStandinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given 6 accounts updated an hour ago in Zuora, of which the sync already wrote 4 at that UpdatedDate
    updated = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    ids = [f"A{n}" for n in range(6)]
    standin.seed("Account", [{"Id": i, "UpdatedDate": updated.isoformat(), "Name": f"Account {i}"} for i in ids])
    state = DynamoVersionStore(STATE_TABLE, aws["dynamodb"])
    for record_id in ids[:4]:
        written = QueuedChange(
            object_type="Account",
            record_id=record_id,
            updated_date=updated,
            notification_id=f"callout-{record_id}",
            received_at=updated + timedelta(seconds=2),
        )
        state.claim(written.record_key, written.version, written.content_hash, owner="s", lease_until_ms=2**50)
        state.commit(written.record_key, written.version, written.content_hash, owner="s", salesforce_id=None)
    capsys.readouterr()

    # When the schedule invokes the function
    answer = app.lambda_handler(EVENT, ReconcileContext())

    # Then only the two records Salesforce lacks are on the queue, marked as reconciliation's
    queued = drain(aws["sqs"], aws["queue_url"])
    assert sorted(b["record_id"] for b in queued) == ["A4", "A5"]
    assert all(b["notification_id"].startswith("reconcile:Account:") for b in queued)
    assert answer["queued"] == 2
    # and the metric counts them, next to the records read
    values = emf(capsys.readouterr().out)
    assert values[RECOVERED_BY_RECONCILIATION] == 2
    assert values[RECONCILE_RECORDS_READ] == 6
    # and every object's watermark moved, so the next run starts there
    checkpoints = DynamoSweepCheckpoints(STATE_TABLE, aws["dynamodb"])
    assert checkpoints.watermark(RECONCILE_SWEEP, "Account") is not None

    # When the next run comes and nothing changed
    app.lambda_handler(EVENT, ReconcileContext())

    # Then nothing more is queued: the records are behind the new window (watermark minus the overlap)
    assert drain(aws["sqs"], aws["queue_url"]) == []
    assert emf(capsys.readouterr().out)[RECOVERED_BY_RECONCILIATION] == 0


def test_an_object_zuora_refuses_fails_the_invocation_after_the_others_ran_and_were_reported(
    aws: dict[str, Any], standin: ZuoraStandinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a tenant whose Account query works and whose other mapped objects' queries Zuora refuses (a mapped
    # field the tenant does not have, say)
    updated = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    standin.seed("Account", [{"Id": "A1", "UpdatedDate": updated.isoformat(), "Name": "Account A1"}])
    standin.set_faults(
        [
            {"status": 400, "code": "INVALID_FIELD", "message": "invalid field", "query_contains": f"from {o} "}
            for o in load_mapping().write_order()[1:]
        ]
    )
    capsys.readouterr()

    # When the schedule invokes the function, it fails (Lambda counts an error: the ReconcileErrorsAlarm)
    with pytest.raises(ReconcileError, match="Invoice"):
        app.lambda_handler(EVENT, ReconcileContext())

    # Then the account was still queued and its watermark moved, and the log names each failed object
    assert [b["record_id"] for b in drain(aws["sqs"], aws["queue_url"])] == ["A1"]
    assert DynamoSweepCheckpoints(STATE_TABLE, aws["dynamodb"]).watermark(RECONCILE_SWEEP, "Account") is not None
    failed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "reconcile object failed" in line]
    assert {line["object_type"] for line in failed} == set(load_mapping().write_order()[1:])


def test_a_run_asked_for_deletes_queues_the_delete_zuora_never_called_out(
    aws: dict[str, Any], standin: ZuoraStandinClient
) -> None:
    # Given two accounts the sync wrote to Salesforce, of which Zuora still has one (A2's delete callout was lost)
    updated = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    standin.seed("Account", [{"Id": "A1", "UpdatedDate": updated.isoformat(), "Name": "Account A1"}])
    state = DynamoVersionStore(STATE_TABLE, aws["dynamodb"])
    for record_id in ("A1", "A2"):
        written = QueuedChange(
            object_type="Account",
            record_id=record_id,
            updated_date=updated,
            notification_id=f"callout-{record_id}",
            received_at=updated + timedelta(seconds=2),
        )
        state.claim(written.record_key, written.version, written.content_hash, owner="s", lease_until_ms=2**50)
        state.commit(written.record_key, written.version, written.content_hash, owner="s", salesforce_id="a0B5g0001")

    # When the function runs with the event `nrtsync reconcile --stack ... --deletes` sends
    event = scheduled_event(deletes=True, now=datetime.now(UTC).replace(hour=12))
    app.lambda_handler(event, ReconcileContext())

    # Then A2's delete is queued (reconciliation's own window holds nothing new: A1 was written as it is)
    queued = drain(aws["sqs"], aws["queue_url"])
    assert [(b["record_id"], b.get("change_type")) for b in queued] == [("A2", "DELETE")]

    # And the same run without the ask queues nothing (12:00 UTC is not the daily deletes hour)
    app.lambda_handler(scheduled_event(deletes=False, now=datetime.now(UTC).replace(hour=12)), ReconcileContext())
    assert drain(aws["sqs"], aws["queue_url"]) == []


def local_client(name: str) -> Any:
    """A client of the local stack's AWS (moto in this process)."""
    return boto3.Session(region_name=REGION).client(name)  # type: ignore[call-overload]


def test_nrtsync_reconcile_local_runs_one_pass_with_the_deletes_sweep(
    aws: dict[str, Any], standin: ZuoraStandinClient
) -> None:
    # Given the local stack's tables, queue and ZuoraSecret; an account the sync wrote that Zuora no longer has
    updated = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    state = DynamoVersionStore(STATE_TABLE, aws["dynamodb"])
    gone = QueuedChange(
        object_type="Account",
        record_id="A9",
        updated_date=updated,
        notification_id="callout-A9",
        received_at=updated,
    )
    state.claim(gone.record_key, gone.version, gone.content_hash, owner="s", lease_until_ms=2**50)
    state.commit(gone.record_key, gone.version, gone.content_hash, owner="s", salesforce_id="a0B5g0009")
    target = BackfillTarget(
        STATE_TABLE,
        aws["queue_url"],
        local_client,
        values={"zuora_secret_id": "zuora", "zuora_ca_file": standin.ca_file},
    )

    # When `nrtsync --local reconcile --deletes` runs
    out = StringIO()
    args = build_parser().parse_args(["--local", "reconcile", "--deletes"])
    code = run_reconcile_command(args, out, target=target)

    # Then it ran here, over the stand-in's API, and queued the lost delete
    assert code == 0
    assert "deletes_queued: 1" in out.getvalue()
    assert [(b["record_id"], b.get("change_type")) for b in drain(aws["sqs"], aws["queue_url"])] == [("A9", "DELETE")]
