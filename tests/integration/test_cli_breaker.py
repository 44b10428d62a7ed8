"""``nrtsync --local pause|resume`` against moto in server mode: the breaker's item in the state table and the
mapping flag the local stack's poller watches (``nrtsync_local.poller.MappingSwitch``, another process on a
real run)."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore
from nrtsync.ports.breaker import BreakerReason, BreakerState
from nrtsync_cli.breaker_commands import breaker_status
from nrtsync_cli.cli import run
from nrtsync_local.poller import MappingSwitch
from tests.support.sync_world import HISTORY_TABLE, STATE_TABLE, create_tables

pytestmark = pytest.mark.integration

REGION = "eu-west-1"


@pytest.fixture
def local_stack(moto_endpoint: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name=REGION)
    create_tables(ddb)
    state = tmp_path / ".local" / "stack.json"
    state.parent.mkdir()
    switch_file = state.with_name("stack.event-source.json")
    info = {
        "aws_endpoint_url": moto_endpoint,
        "region": REGION,
        "queue_url": sqs.create_queue(QueueName="callouts")["QueueUrl"],
        "dlq_url": sqs.create_queue(QueueName="callouts-dlq")["QueueUrl"],
        "history_table": HISTORY_TABLE,
        "state_table": STATE_TABLE,
        "event_source_file": str(switch_file),
    }
    state.write_text(json.dumps(info), encoding="utf-8")
    # The running stack's side of the flag: what its poller reads before each receive.
    poller_switch = MappingSwitch(switch_file)
    yield {"state": state, "store": DynamoBreakerStore(STATE_TABLE, client=ddb), "poller": poller_switch}
    with urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")):
        pass


def cli(local_stack: dict[str, Any], *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run(["--local", "--state-file", str(local_stack["state"]), *argv], out=out)
    return code, out.getvalue()


def test_pause_opens_the_breaker_by_hand_and_stops_the_local_poller(local_stack: dict[str, Any]) -> None:
    # When an operator pauses the sync with a reason
    code, printed = cli(local_stack, "pause", "--reason", "Salesforce release 20:00-22:00", "--by", "ana")

    # Then the breaker is open, MANUAL, by the operator, and the running stack's poller stops receiving
    assert code == 0
    assert "paused by operator:ana" in printed
    state = local_stack["store"].read()
    assert (state.is_open, state.reason, state.by, state.message) == (
        True,
        BreakerReason.MANUAL,
        "operator:ana",
        "Salesforce release 20:00-22:00",
    )
    assert local_stack["poller"].enabled is False


def test_resume_closes_it_and_the_poller_receives_again(local_stack: dict[str, Any]) -> None:
    cli(local_stack, "pause", "--reason", "release", "--by", "ana")

    code, printed = cli(local_stack, "--json", "resume", "--reason", "release done", "--by", "ben")

    assert code == 0
    answer = json.loads(printed)
    assert answer["breaker"] == "closed"
    assert answer["by"] == "operator:ben"
    assert not local_stack["store"].read().is_open
    assert local_stack["poller"].enabled is True


def test_a_pause_keeps_the_since_of_a_breaker_already_open(local_stack: dict[str, Any]) -> None:
    # Given the sync opened the breaker for an outage
    since = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    local_stack["store"].write(
        BreakerState(True, BreakerReason.SALESFORCE_UNAVAILABLE, "5 failed calls", since, "sync", since)
    )

    cli(local_stack, "pause", "--reason", "hold it until the release ends", "--by", "ana")

    # Then it is MANUAL now (the probe will not close it) and still open since the outage began
    state = local_stack["store"].read()
    assert (state.reason, state.since) == (BreakerReason.MANUAL, since)
    assert breaker_status(state)["since"] == "2026-12-01T03:00:00+00:00"


def test_pause_needs_a_reason(local_stack: dict[str, Any]) -> None:
    code, _ = cli(local_stack, "pause")
    assert code == 2
    code, _ = cli(local_stack, "pause", "--reason", "  ")
    assert code == 2
    assert not local_stack["store"].read().is_open


def test_a_stopped_local_stack_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["--local", "--state-file", str(tmp_path / "none.json"), "pause", "--reason", "x"], out=io.StringIO())
    assert code == 3
    assert "does not exist" in capsys.readouterr().err


def test_status_shows_the_breaker_as_stored(local_stack: dict[str, Any]) -> None:
    # Given a stack whose breaker never opened
    code, out = cli(local_stack, "status", "--json")
    assert code == 0
    assert json.loads(out)["breaker"] is None

    # When an operator pauses it, then `status` reads the breaker's item as pause wrote it
    cli(local_stack, "pause", "--reason", "release", "--by", "ana")

    breaker = json.loads(cli(local_stack, "status", "--json")[1])["breaker"]
    assert (breaker["state"], breaker["reason"], breaker["by"], breaker["message"]) == (
        "open",
        "MANUAL",
        "operator:ana",
        "release",
    )
    assert breaker["since"]


def test_an_unknown_deployed_stack_exits_3(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        code = run(["--stack", "no-such-stack", "pause", "--reason", "x"], out=io.StringIO())
    assert code == 3
    assert "no-such-stack" in capsys.readouterr().err
