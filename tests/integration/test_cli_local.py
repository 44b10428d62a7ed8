"""``nrtsync --local`` against moto in server mode: the endpoint, region and names come from the state file."""

from __future__ import annotations

import io
import json
import socket
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from nrtsync.adapters.aws.tables import BREAKER_KEY, api_usage_item
from nrtsync.ports.salesforce import ApiUsage
from nrtsync_cli.cli import run
from tests.support.sync_world import HISTORY_TABLE, STATE_TABLE, SyncWorld, change, create_tables, message

pytestmark = pytest.mark.integration

REGION = "eu-west-1"


@pytest.fixture
def local_stack(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The stack's table and queues in moto, and the state file ``make local`` would write for them."""
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name=REGION)
    create_tables(ddb)
    info = {
        "aws_endpoint_url": moto_endpoint,
        "region": REGION,
        "queue_url": sqs.create_queue(QueueName="callouts")["QueueUrl"],
        "dlq_url": sqs.create_queue(QueueName="callouts-dlq")["QueueUrl"],
        "history_table": HISTORY_TABLE,
        "state_table": STATE_TABLE,
    }
    state = tmp_path / ".local" / "stack.json"
    state.parent.mkdir()
    state.write_text(json.dumps(info), encoding="utf-8")
    # The shell points elsewhere (a closed port, another region): --local must not follow it.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.chdir(tmp_path)
    yield {"world": SyncWorld(dynamodb=ddb), "ddb": ddb, "sqs": sqs, "state": state, **info}
    # moto's state outlives the test (the server shares the process's backends): a fresh one for the next
    with urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")):
        pass


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run(list(argv), out=out, stdin=io.StringIO())  # no terminal: nothing can be confirmed
    return code, out.getvalue()


def test_local_reads_the_state_file_in_the_working_directory(local_stack: dict[str, Any]) -> None:
    # Given a session and a refused record on the local stack
    world: SyncWorld = local_stack["world"]
    world.salesforce.refuse["A2"] = ("DUPLICATE_VALUE", "duplicate")
    world.run(message(change("Account", "A1")), message(change("Account", "A2")))

    # When the operator asks the local stack
    code, sessions = cli("--local", "--json", "sessions", "--since", "7d")
    failed_code, failures = cli("--local", "--json", "failures")

    # Then the answers come from the moto server the state file names
    assert (code, failed_code) == (0, 0)
    assert [(row["records_in"], row["written"], row["failed"]) for row in json.loads(sessions)] == [(2, 1, 1)]
    assert [row["record_id"] for row in json.loads(failures)] == ["A2"]


def test_local_redrives_on_the_local_queues(local_stack: dict[str, Any]) -> None:
    sqs = local_stack["sqs"]
    sqs.send_message(QueueUrl=local_stack["dlq_url"], MessageBody="m0")

    code, output = cli("--local", "redrive-dlq", "--yes")

    assert code == 0
    assert "moved 1" in output
    [moved] = sqs.receive_message(QueueUrl=local_stack["queue_url"]).get("Messages", [])
    assert moved["Body"] == "m0"


def test_state_file_names_another_file(local_stack: dict[str, Any], tmp_path: Path) -> None:
    # Given the state file somewhere else (`make local`'s --state-dir), none in .local/
    moved = tmp_path / "elsewhere.json"
    local_stack["state"].rename(moved)

    # Then --local alone finds nothing, and --state-file finds the stack
    assert cli("--local", "sessions")[0] == 3
    assert cli("--local", "--state-file", str(moved), "sessions") == (0, "(none)\n")


def test_a_stopped_local_stack_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a state file left behind by a stack that is gone (nothing listens on its endpoint)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    state = tmp_path / "stack.json"
    info = {"aws_endpoint_url": closed, "region": REGION, "queue_url": f"{closed}/q", "dlq_url": f"{closed}/d"}
    state.write_text(json.dumps(info | {"history_table": HISTORY_TABLE}), encoding="utf-8")

    # Then the CLI says the stack cannot be reached
    assert run(["--local", "--state-file", str(state), "sessions"]) == 3
    assert "cannot read the sync history" in capsys.readouterr().err


def test_local_failures_take_json_after_the_command(local_stack: dict[str, Any]) -> None:
    # issue 11: `failures --json` exited 2 (--json was only an option before the command)
    world: SyncWorld = local_stack["world"]
    world.salesforce.refuse["A2"] = ("DUPLICATE_VALUE", "duplicate")
    world.run(message(change("Account", "A2")))

    code, output = cli("--local", "failures", "--json")

    assert code == 0
    assert [row["record_id"] for row in json.loads(output)] == ["A2"]


def test_local_status_reads_the_queues_and_the_state_table(local_stack: dict[str, Any]) -> None:
    # Given a session, a change waiting, a dead letter, the API usage and an open breaker on the local stack
    world: SyncWorld = local_stack["world"]
    world.run(message(change("Account", "A1")))
    sqs, ddb = local_stack["sqs"], local_stack["ddb"]
    sqs.send_message(QueueUrl=local_stack["queue_url"], MessageBody="waiting")
    sqs.send_message(QueueUrl=local_stack["dlq_url"], MessageBody="dead")
    usage = ApiUsage(used=9_100, limit=10_000, observed_at=datetime(2026, 12, 1, 22, 0, tzinfo=UTC))
    ddb.put_item(TableName=STATE_TABLE, Item=api_usage_item(usage))
    ddb.put_item(
        TableName=STATE_TABLE,
        Item={
            "pk": {"S": BREAKER_KEY},
            "state": {"S": "open"},
            "reason": {"S": "API_BUDGET_REACHED"},
            "message": {"S": "91% of the daily allocation"},
            "since": {"S": "2026-12-01T22:00:00+00:00"},
            "by": {"S": "sync"},
        },
    )

    # When the operator asks for the status, as JSON and as a table
    code, output = cli("--local", "status", "--json")
    table_code, table = cli("--local", "status")

    # Then the queues, the API usage, the breaker and the session are the local stack's; what moto cannot know
    # (SQS's CloudWatch age metric, alarms) is said to be unavailable
    status = json.loads(output)
    assert (code, table_code) == (1, 1)  # degraded: the breaker open, a dead letter waiting
    assert status["problems"] == ["breaker open: API_BUDGET_REACHED", "1 dead letters waiting"]
    assert (status["queue"]["visible"], status["dead_letter_queue"]["visible"]) == (1, 1)
    assert status["api_usage"]["percent"] == 91.0
    assert (status["breaker"]["state"], status["breaker"]["reason"]) == ("open", "API_BUDGET_REACHED")
    assert status["last_session"]["written"] == 1
    assert status["queue"]["oldest_message_age"]["seconds"] is None
    assert status["alarms"] is None
    assert "open since 2026-12-01T22:00:00+00:00 by sync: API_BUDGET_REACHED" in table
    assert "91.0% (9100 of 10000" in table


def test_local_redrive_needs_yes_without_a_terminal_and_dry_run_moves_nothing(local_stack: dict[str, Any]) -> None:
    sqs = local_stack["sqs"]
    sqs.send_message(QueueUrl=local_stack["dlq_url"], MessageBody="m0")

    assert cli("--local", "redrive-dlq")[0] == 2
    code, output = cli("--local", "redrive-dlq", "--dry-run", "--json")

    assert code == 0
    assert json.loads(output)["dead_letters"] == 1
    assert sqs.receive_message(QueueUrl=local_stack["queue_url"]).get("Messages", []) == []


def test_status_of_a_stopped_local_stack_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    state = tmp_path / "stack.json"
    info = {"aws_endpoint_url": closed, "region": REGION, "queue_url": f"{closed}/q", "dlq_url": f"{closed}/d"}
    state.write_text(json.dumps(info | {"history_table": HISTORY_TABLE, "state_table": STATE_TABLE}))

    assert run(["--local", "--state-file", str(state), "status"]) == 3
    assert "cannot read" in capsys.readouterr().err
