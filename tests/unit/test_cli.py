"""The operator's command line against moto (in-process), over history written by the real sync service."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nrtsync.cli import run
from nrtsync.models.callout import QueuedChange
from nrtsync.operations import Operations, StackResources
from tests.support.sync_world import HISTORY_TABLE, SyncWorld, change, create_tables, message


@dataclass
class Cli:
    world: SyncWorld
    ops: Operations
    sqs: Any
    queue_url: str
    dlq_url: str

    def __call__(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = run(list(argv), operations=self.ops, out=out)
        return code, out.getvalue()

    def queued(self, url: str) -> list[str]:
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [m["Body"] for m in messages]


@pytest.fixture
def cli() -> Iterator[Cli]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="eu-west-1")
        sqs = boto3.client("sqs", region_name="eu-west-1")
        create_tables(ddb)
        queue_url = sqs.create_queue(QueueName="callouts")["QueueUrl"]
        dlq_url = sqs.create_queue(QueueName="callouts-dlq")["QueueUrl"]
        ops = Operations(StackResources(HISTORY_TABLE, queue_url, dlq_url), dynamodb=ddb, sqs=sqs)
        yield Cli(SyncWorld(dynamodb=ddb), ops, sqs, queue_url, dlq_url)


def test_sessions_lists_counts_and_latencies(cli: Cli) -> None:
    # Given two sessions ran
    cli.world.run(message(change("Account", "A1")), message(change("Account", "A2")))
    cli.world.run(message(change("Account", "A1")))  # a duplicate

    # When the operator lists sessions as JSON
    code, output = cli("--json", "sessions", "--since", "1d")

    # Then both are there, newest first, with their counts and a latency
    rows = json.loads(output)
    assert code == 0
    assert [(r["records_in"], r["written"], r["duplicates"]) for r in rows] == [(1, 0, 1), (2, 2, 0)]
    assert rows[1]["latency_p50_ms"] is not None


def test_sessions_prints_a_table(cli: Cli) -> None:
    cli.world.run(message(change("Account", "A1")))
    code, output = cli("sessions")
    header = output.splitlines()[0].split()
    assert code == 0
    assert header[:4] == ["started", "ms", "in", "written"]


def test_trail_shows_a_record_from_callout_to_salesforce_id(cli: Cli) -> None:
    # Given a record written, then a stale re-delivery
    first = change("Account", "A1", Name="x")
    cli.world.run(message(first))
    cli.world.run(
        message(
            first.model_copy(update={"fields": {"Name": "y"}, "updated_date": first.updated_date.replace(year=2025)})
        )
    )

    # When the operator asks for its trail
    code, output = cli("--json", "trail", "Account", "A1")

    # Then both outcomes show, the first with the Salesforce Id
    rows = json.loads(output)
    assert code == 0
    assert [r["status"] for r in rows] == ["written", "stale"]
    assert rows[0]["salesforce_id"].startswith("a0")


def test_trail_of_an_unknown_record_exits_1(cli: Cli) -> None:
    assert cli("trail", "Account", "nope")[0] == 1


def test_failures_can_be_listed_filtered_and_retried(cli: Cli) -> None:
    # Given two permanent failures with different codes
    cli.world.salesforce.refuse["A1"] = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "bad name")
    cli.world.salesforce.refuse["A2"] = ("DUPLICATE_VALUE", "duplicate")
    cli.world.run(message(change("Account", "A1")), message(change("Account", "A2")))

    # When the operator filters by code
    code, output = cli("--json", "failures", "--code", "DUPLICATE_VALUE")
    assert code == 0
    assert [r["record_id"] for r in json.loads(output)] == ["A2"]

    # And retries that code after fixing the cause
    code, output = cli("retry", "--code", "DUPLICATE_VALUE")

    # Then the original change is back on the queue and off the failure list; the other stays
    assert code == 0
    assert "retried 1" in output
    [body] = cli.queued(cli.queue_url)
    assert QueuedChange.model_validate_json(body).record_id == "A2"
    remaining = json.loads(cli("--json", "failures")[1])
    assert [r["record_id"] for r in remaining] == ["A1"]


def test_retry_without_a_filter_needs_all(cli: Cli) -> None:
    assert cli("retry")[0] == 2


def test_redrive_moves_dead_letters_back(cli: Cli) -> None:
    # Given two messages on the DLQ
    for n in range(2):
        cli.sqs.send_message(QueueUrl=cli.dlq_url, MessageBody=f"m{n}")

    # When the operator redrives
    code, output = cli("redrive-dlq")

    # Then they are on the callout queue and the DLQ is empty
    assert code == 0
    assert "moved 2" in output
    assert sorted(cli.queued(cli.queue_url)) == ["m0", "m1"]
    assert cli.ops.dead_letter_count() == 0


def test_an_unreachable_stack_exits_3(cli: Cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .local/stack.json here
    assert run(["sessions"]) == 3
