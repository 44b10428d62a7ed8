"""``nrtsync --local`` against moto in server mode: the endpoint, region and names come from the state file."""

from __future__ import annotations

import io
import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from nrtsync_cli.cli import run
from tests.support.sync_world import HISTORY_TABLE, SyncWorld, change, create_tables, message

pytestmark = pytest.mark.integration

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


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
    }
    state = tmp_path / ".local" / "stack.json"
    state.parent.mkdir()
    state.write_text(json.dumps(info), encoding="utf-8")
    # The shell points elsewhere (a closed port, another region): --local must not follow it.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.chdir(tmp_path)
    yield {"world": SyncWorld(dynamodb=ddb), "sqs": sqs, "state": state, **info}
    # moto's state outlives the test (the server shares the process's backends): a fresh one for the next
    with urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")):
        pass


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run(list(argv), out=out)
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

    code, output = cli("--local", "redrive-dlq")

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
