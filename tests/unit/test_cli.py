"""The operator's command line against moto (in-process), over history written by the real sync service."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nrtsync.models.callout import QueuedChange
from nrtsync_cli.cli import main, run
from nrtsync_cli.operations import Operations, StackResources
from tests.support.sync_world import HISTORY_TABLE, SyncWorld, change, create_tables, message

ROOT = Path(__file__).resolve().parents[2]


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
    assert run(["--local", "sessions"]) == 3


# --- which stack: named on the command line, never guessed ----------------------------------------------------


def write_local_state(directory: Path, queue_url: str, dlq_url: str) -> Path:
    """A state file as ``make local`` writes it (nrtsync_local.stack.LocalDeployment.info), names the tests use."""
    state = directory / ".local" / "stack.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "aws_endpoint_url": "http://127.0.0.1:9",
        "region": "eu-west-1",
        "queue_url": queue_url,
        "dlq_url": dlq_url,
        "history_table": HISTORY_TABLE,
    }
    state.write_text(json.dumps(info), encoding="utf-8")
    return state


def test_without_stack_or_local_exits_2_even_when_a_local_stack_file_exists(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a local stack's state file in the working directory, naming tables and queues that exist
    write_local_state(tmp_path, cli.queue_url, cli.dlq_url)
    monkeypatch.chdir(tmp_path)

    # When the operator names no stack
    code = run(["sessions"])

    # Then nothing is read: a usage error that says which flags choose the stack
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: nrtsync")
    assert "--stack NAME" in error
    assert "--local" in error


def test_stack_and_local_together_are_a_usage_error(cli: Cli) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["--stack", "nrtsync-prod", "--local", "sessions"])
    assert exited.value.code == 2


def test_state_file_without_local_exits_2(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--stack", "nrtsync-prod", "--state-file", "x.json", "sessions"]) == 2
    assert "--state-file goes with --local" in capsys.readouterr().err


def test_a_named_stack_reads_its_outputs_not_the_local_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployed stack whose Outputs name the history table, and a local state file that would fail if read
    # (its endpoint is a closed port)
    cli.world.run(message(change("Account", "A1")))
    outputs = {
        "SyncHistoryTableName": HISTORY_TABLE,
        "CalloutQueueUrl": cli.queue_url,
        "CalloutDeadLetterQueueUrl": cli.dlq_url,
    }
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName="nrtsync-test", TemplateBody=json.dumps(template))
    write_local_state(tmp_path, "http://127.0.0.1:9/q", "http://127.0.0.1:9/dlq")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()

    # When the operator names the stack
    code = run(["--stack", "nrtsync-test", "--json", "sessions", "--since", "1d"], out=out)

    # Then the session comes from the stack's table
    assert code == 0
    assert [row["written"] for row in json.loads(out.getvalue())] == [1]


def test_a_stack_without_the_outputs_exits_3(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    boto3.client("cloudformation").create_stack(StackName="other", TemplateBody=json.dumps(template))
    assert run(["--stack", "other", "sessions"]) == 3
    assert "stack other has no output" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "said"),
    [("{not json", "is not a local stack's state file"), ('{"region": "eu-west-1"}', "is not a local stack's")],
)
def test_a_broken_local_state_file_exits_3(
    cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, said: str
) -> None:
    state = tmp_path / "stack.json"
    state.write_text(content, encoding="utf-8")
    assert run(["--local", "--state-file", str(state), "sessions"]) == 3
    assert said in capsys.readouterr().err


# --- the package: a console script, outside the Lambda layer --------------------------------------------------


def test_the_console_script_runs_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # pyproject.toml declares it; `make venv` installs it (the entry point is the installed metadata)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert declared == {"nrtsync": "nrtsync_cli.cli:main"}
    [installed] = entry_points(group="console_scripts", name="nrtsync")
    assert installed.load() is main
    # And it reads its arguments from the command line
    monkeypatch.setattr(sys, "argv", ["nrtsync", "--local", "--state-file", str(tmp_path / "none.json"), "sessions"])
    assert main() == 3
    assert "none.json does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [[str(Path(sys.executable).parent / "nrtsync")], [sys.executable, "-m", "nrtsync_cli"]]
)
def test_the_cli_runs_as_a_program(command: list[str], tmp_path: Path) -> None:
    helped = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: nrtsync")
    assert "--local" in helped.stdout
    # the exit code reaches the shell
    unnamed = subprocess.run([*command, "sessions"], capture_output=True, text=True, check=False, timeout=60)
    assert unnamed.returncode == 2
    assert "say which stack" in unnamed.stderr


def test_the_lambda_layer_holds_no_operator_cli() -> None:
    layer = ROOT / "layers" / "shared"
    modules = {path.relative_to(layer).with_suffix("").as_posix() for path in layer.rglob("*.py")}
    assert modules, "the layer's sources moved: update this test"
    assert {"nrtsync/cli", "nrtsync/operations", "nrtsync/__main__"} & modules == set()
    assert not any(module.startswith("nrtsync_cli") for module in modules)
