"""The operator's command line against moto (in-process), over history written by the real sync service."""

from __future__ import annotations

import argparse
import io
import json
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

import boto3
import pytest
from moto import mock_aws

from nrtsync.adapters.aws.tables import BREAKER_KEY, api_usage_item
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.salesforce import ApiUsage
from nrtsync_cli.cli import EXAMPLES, build_parser, main, run
from nrtsync_cli.operations import Operations, StackResources
from tests.support.sqs_move_tasks import SqsWithMoveTasks
from tests.support.sync_world import HISTORY_TABLE, STATE_TABLE, SyncWorld, change, create_tables, message
from tests.support.terminal import Tty

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cli:
    world: SyncWorld
    ops: Operations
    sqs: Any
    queue_url: str
    dlq_url: str
    slept: list[float] = field(default_factory=list)

    def __call__(self, *argv: str, stdin: Any = None) -> tuple[int, str]:
        out = io.StringIO()
        code = run(list(argv), operations=self.ops, out=out, stdin=stdin or io.StringIO(), sleep=self.slept.append)
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
        resources = StackResources(HISTORY_TABLE, queue_url, dlq_url, state_table=STATE_TABLE)
        ops = Operations(resources, dynamodb=ddb, sqs=sqs)
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

    # When the operator redrives (--yes: a test has no terminal to confirm on)
    code, output = cli("redrive-dlq", "--yes")

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
    assert error.startswith("nrtsync: error: ")
    assert "--stack NAME" in error
    assert "--local" in error


@pytest.mark.parametrize(
    "argv",
    [["--stack", "nrtsync-prod", "--local", "sessions"], ["--stack", "nrtsync-prod", "sessions", "--local"]],
    ids=["both-before", "one-after"],
)
def test_stack_and_local_together_are_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 2
    assert capsys.readouterr().err.startswith("nrtsync: error: ")


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


# --- issue 11: status, --json everywhere, --region/--profile, redrive-dlq with StartMessageMoveTask ------------

STACK = "nrtsync-test"


@pytest.fixture
def aws(cli: Cli) -> Cli:
    """The same moto world seen as a deployed stack: CloudWatch, the state table, alarms, server-side redrive.

    moto 5.2 has no message move tasks: ``SqsWithMoveTasks`` adds them as the SQS API Reference describes.
    """
    dlq_arn = cli.sqs.get_queue_attributes(QueueUrl=cli.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 10})
    cli.sqs.set_queue_attributes(QueueUrl=cli.queue_url, Attributes={"RedrivePolicy": policy})
    sqs = SqsWithMoveTasks(cli.sqs)
    resources = StackResources(HISTORY_TABLE, cli.queue_url, cli.dlq_url, state_table=STATE_TABLE, stack_name=STACK)
    ops = Operations(
        resources,
        dynamodb=cli.world.dynamodb,
        sqs=sqs,  # type: ignore[arg-type]
        cloudwatch=boto3.client("cloudwatch", region_name="eu-west-1"),
        server_side_redrive=True,
    )
    return Cli(cli.world, ops, sqs, cli.queue_url, cli.dlq_url)


def put_alarm(name: str, state: Literal["OK", "ALARM"]) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"test: {state}")


def test_status_shows_queues_age_breaker_usage_session_and_the_stacks_alarms(aws: Cli) -> None:
    # Given a session, two changes waiting, one dead letter, the API usage item, an open breaker,
    # SQS's age metric in CloudWatch, and alarms of this stack and of another
    aws.world.run(message(change("Account", "A1")))
    for n in range(2):
        aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=f"w{n}")
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody="dead")
    usage = ApiUsage(used=4_500, limit=10_000, observed_at=datetime(2026, 12, 1, 21, 0, tzinfo=UTC))
    aws.world.dynamodb.put_item(TableName=STATE_TABLE, Item=api_usage_item(usage))
    breaker = {
        "pk": BREAKER_KEY,
        "state": "open",
        "reason": "SALESFORCE_UNAVAILABLE",
        "message": "5 calls failed",
        "since": "2026-12-01T21:30:00+00:00",
        "by": "sync",
        "updated_at": "2026-12-01T21:31:00+00:00",
    }
    aws.world.dynamodb.put_item(TableName=STATE_TABLE, Item={k: {"S": v} for k, v in breaker.items()})
    now = datetime.now(UTC)
    boto3.client("cloudwatch", region_name="eu-west-1").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": "callouts"}],
                "Timestamp": now - timedelta(minutes=minutes),
                "Value": value,
                "Unit": "Seconds",
            }
            for minutes, value in ((5, 30.0), (1, 95.0))
        ],
    )
    put_alarm(f"{STACK}-dead-letters", "OK")
    put_alarm(f"{STACK}-sync-errors", "ALARM")
    put_alarm("another-stack-dead-letters", "ALARM")

    # When the operator asks for the status as JSON (after the command's name)
    code, output = aws("status", "--json")

    # Then each part is there, and the stack is degraded (exit 1) for each of its three reasons
    status = json.loads(output)
    assert code == 1
    assert status["healthy"] is False
    assert status["problems"] == [
        f"alarm {STACK}-sync-errors in ALARM",
        "breaker open: SALESFORCE_UNAVAILABLE",
        "1 dead letters waiting",
    ]
    assert (status["queue"]["visible"], status["dead_letter_queue"]["visible"]) == (2, 1)
    assert status["queue"]["oldest_message_age"]["seconds"] == 95.0  # the latest minute, not the largest
    assert status["breaker"] | {"pk": BREAKER_KEY} == breaker
    assert status["api_usage"] == {
        "used": 4_500,
        "limit": 10_000,
        "percent": 45.0,
        "observed_at": "2026-12-01T21:00:00+00:00",
    }
    assert (status["last_session"]["records_in"], status["last_session"]["written"]) == (1, 1)
    # only this stack's alarms, those in ALARM first
    assert [(a["name"], a["state"]) for a in status["alarms"]] == [
        (f"{STACK}-sync-errors", "ALARM"),
        (f"{STACK}-dead-letters", "OK"),
    ]


def test_status_prints_a_table_naming_what_is_wrong(aws: Cli) -> None:
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody="dead")
    put_alarm(f"{STACK}-dead-letters", "ALARM")

    code, output = aws("status")

    lines = {line.split("  ")[0]: line for line in output.splitlines()}
    assert code == 1
    assert output.splitlines()[-1] == "degraded: alarm nrtsync-test-dead-letters in ALARM; 1 dead letters waiting"
    assert "1 waiting" in lines["dead letters"]
    assert "1 in ALARM: nrtsync-test-dead-letters" in lines["alarms"]
    assert "closed (never opened)" in lines["breaker"]
    assert "not seen yet" in lines["api usage"]
    assert "no datapoint" in lines["oldest message"]


def test_status_of_the_local_stack_says_what_it_cannot_know(cli: Cli) -> None:
    # The local stack's Operations have no CloudWatch and no stack name: no SQS metrics, no alarms
    code, output = cli("--json", "status")

    status = json.loads(output)
    assert code == 0
    assert status["queue"]["oldest_message_age"]["seconds"] is None
    assert "unavailable on the local stack" in status["queue"]["oldest_message_age"]["note"]
    assert status["alarms"] is None
    assert status["breaker"] is None
    assert status["api_usage"] is None
    assert status["last_session"] is None


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["sessions", "--since", "1d"],
        ["trail", "Account", "A1"],
        ["failures"],
        ["retry", "--all", "--dry-run"],
        ["retry", "--all", "--yes"],
        ["redrive-dlq", "--dry-run"],
        ["redrive-dlq", "--yes"],
    ],
)
@pytest.mark.parametrize("where", ["before", "after"])
def test_json_is_accepted_before_and_after_every_command(cli: Cli, command: list[str], where: str) -> None:
    # Given a record written and one refused, and a dead letter
    cli.world.salesforce.refuse["A2"] = ("DUPLICATE_VALUE", "duplicate")
    cli.world.run(message(change("Account", "A1")), message(change("Account", "A2")))
    cli.sqs.send_message(QueueUrl=cli.dlq_url, MessageBody="dead")
    argv = ["--json", *command] if where == "before" else [*command, "--json"]

    # When the command runs with --json in either place
    code, output = cli(*argv)

    # Then it succeeds (status: degraded, a dead letter waits) and prints one JSON document
    assert code == (1 if command == ["status"] else 0), output
    assert json.loads(output) not in (None, [], {})


def test_retry_and_redrive_report_their_counts_as_json(cli: Cli) -> None:
    cli.world.salesforce.refuse["A2"] = ("DUPLICATE_VALUE", "duplicate")
    cli.world.run(message(change("Account", "A2")))
    cli.sqs.send_message(QueueUrl=cli.dlq_url, MessageBody="dead")

    assert json.loads(cli("retry", "--all", "--yes", "--json")[1]) == {"retried": 1, "not_retried": 0}
    redriven = json.loads(cli("redrive-dlq", "--yes", "--json")[1])
    assert (redriven["dead_letters"], redriven["moved"], redriven["not_moved"]) == (1, 1, 0)


# --- redrive-dlq on AWS: StartMessageMoveTask ------------------------------------------------------------------


def dead_letters(target: Cli, count: int) -> None:
    for n in range(count):
        target.sqs.send_message(QueueUrl=target.dlq_url, MessageBody=f"m{n}")


def bodies(target: Cli, url: str) -> list[str]:
    found: list[str] = []
    while batch := target.queued(url):
        found += batch
    return sorted(found)


def test_redrive_starts_a_server_side_move_task_and_follows_it(aws: Cli) -> None:
    # Given three dead letters
    dead_letters(aws, 3)

    # When the operator redrives at 2 messages a second, confirmed
    code, output = aws("redrive-dlq", "--limit", "2", "--yes")

    # Then one move task ran from the DLQ to the callout queue at that rate, and it was followed to the end
    assert code == 0, output
    assert output.startswith("COMPLETED: moved 3 of 3")
    [started] = aws.sqs.started
    arns = [aws.ops.queue_arn(url) for url in (aws.dlq_url, aws.queue_url)]
    assert started == {"SourceArn": arns[0], "DestinationArn": arns[1], "MaxNumberOfMessagesPerSecond": 2}
    assert aws.slept, "progress was polled while the task ran"
    assert bodies(aws, aws.queue_url) == ["m0", "m1", "m2"]
    assert aws.ops.dead_letter_count() == 0


def test_redrive_dry_run_counts_and_moves_nothing(aws: Cli) -> None:
    dead_letters(aws, 2)

    code, output = aws("redrive-dlq", "--dry-run", "--json")

    assert code == 0
    assert json.loads(output)["dead_letters"] == 2
    assert aws.sqs.started == []
    assert aws.ops.dead_letter_count() == 2


def test_redrive_no_wait_returns_after_starting(aws: Cli) -> None:
    dead_letters(aws, 2)

    code, output = aws("redrive-dlq", "--yes", "--no-wait", "--json")

    assert code == 0
    assert json.loads(output)["status"] == "RUNNING"
    assert len(aws.sqs.started) == 1
    assert aws.slept == []


def test_redrive_without_a_terminal_and_without_yes_is_refused(aws: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    dead_letters(aws, 1)

    code, _ = aws("redrive-dlq")  # stdin is not a terminal

    assert code == 2
    assert "add --yes" in capsys.readouterr().err
    assert aws.sqs.started == []
    assert aws.ops.dead_letter_count() == 1


@pytest.mark.parametrize(("answer", "code", "moved"), [("y\n", 0, True), ("n\n", 1, False), ("\n", 1, False)])
def test_redrive_asks_at_a_terminal(aws: Cli, answer: str, code: int, moved: bool) -> None:
    dead_letters(aws, 1)

    assert aws("redrive-dlq", stdin=Tty(answer))[0] == code

    assert bool(aws.sqs.started) is moved
    assert aws.ops.dead_letter_count() == (0 if moved else 1)


def test_redrive_refuses_while_a_move_task_runs(aws: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    dead_letters(aws, 3)
    assert aws("redrive-dlq", "--yes", "--no-wait", "--limit", "1")[0] == 0

    assert aws("redrive-dlq", "--yes")[0] == 1
    assert "already running" in capsys.readouterr().err
    assert len(aws.sqs.started) == 1


def test_a_failed_move_task_exits_1_with_its_reason(aws: Cli) -> None:
    dead_letters(aws, 2)
    aws.sqs.fail_with = "AWS.SimpleQueueService.NonExistentQueue"

    code, output = aws("redrive-dlq", "--yes", "--json")

    assert code == 1
    assert json.loads(output)["failure"] == "AWS.SimpleQueueService.NonExistentQueue"


def test_an_empty_dlq_moves_nothing(aws: Cli) -> None:
    code, output = aws("redrive-dlq", "--yes")

    assert (code, output) == (0, "the dead-letter queue is empty: nothing to move\n")
    assert aws.sqs.started == []


@pytest.mark.parametrize("rate", ["0", "501", "ten"])
def test_redrive_limit_is_a_rate_of_1_to_500(aws: Cli, rate: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert aws("redrive-dlq", "--limit", rate, "--yes") == (2, "")
    assert "is not a rate of 1 to 500" in capsys.readouterr().err


# --- --region and --profile: one boto3 Session for every client ------------------------------------------------


def deploy_stack_in(region: str, cli: Cli) -> None:
    outputs = {
        "SyncHistoryTableName": HISTORY_TABLE,
        "SyncStateTableName": STATE_TABLE,
        "CalloutQueueUrl": cli.queue_url,
        "CalloutDeadLetterQueueUrl": cli.dlq_url,
    }
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=region).create_stack(StackName=STACK, TemplateBody=json.dumps(template))


def test_region_chooses_where_the_stack_is_read(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the stack, its tables and queues in eu-west-1 (moto's regions are separate), the shell's default elsewhere
    deploy_stack_in("eu-west-1", cli)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")

    # Then the default region has no such stack, and --region (before or after the command) finds it
    assert run(["--stack", STACK, "failures"], out=io.StringIO()) == 3
    assert run(["--stack", STACK, "--region", "eu-west-1", "failures"], out=io.StringIO()) == 0
    assert run(["--stack", STACK, "failures", "--region", "eu-west-1"], out=io.StringIO()) == 0


def test_profile_chooses_the_session(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a profile whose region is where the stack is
    deploy_stack_in("eu-west-1", cli)
    config = tmp_path / "config"
    config.write_text("[profile oncall]\nregion = eu-west-1\n", encoding="utf-8")
    credentials = tmp_path / "credentials"
    credentials.write_text("[oncall]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for variable in ("AWS_DEFAULT_REGION", "AWS_REGION"):  # they would win over the profile's region
        monkeypatch.delenv(variable, raising=False)
    # Without the profile there is no region at all: a usage error that says so
    assert run(["--stack", STACK, "status"], out=io.StringIO()) == 2
    assert "no AWS region" in capsys.readouterr().err

    out = io.StringIO()
    assert run(["--stack", STACK, "--profile", "oncall", "--json", "status"], out=out) == 0
    assert json.loads(out.getvalue())["alarms"] == []  # a deployed stack's status reads its alarms


def test_an_unknown_profile_is_a_usage_error(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--stack", STACK, "--profile", "nobody-has-this", "status"]) == 2
    assert "--profile nobody-has-this" in capsys.readouterr().err


def test_region_and_profile_are_ignored_with_local(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # --local goes where the state file says; a --region that would fail elsewhere changes nothing
    state = write_local_state(tmp_path, cli.queue_url, cli.dlq_url)
    code = run(["--local", "--state-file", str(state), "--region", "xx-nowhere-1", "--profile", "none", "failures"])
    assert code == 3  # the state file's closed port, not the region or profile, decides
    err = capsys.readouterr().err
    assert "ignored with --local" in err
    assert "cannot read the sync history" in err


def test_status_without_a_state_table_says_it_cannot_tell(cli: Cli) -> None:
    # Given a stack whose outputs (or state file) name no state table
    resources = StackResources(HISTORY_TABLE, cli.queue_url, cli.dlq_url)
    cli.ops = Operations(resources, dynamodb=cli.world.dynamodb, sqs=cli.sqs)

    code, output = cli("status", "--json")
    status = json.loads(output)

    # Then the breaker and the usage are unknown, not "never opened" or "not seen yet", and that is not healthy
    assert code == 1
    assert status["breaker"]["state"] == "unknown"
    assert "name no state table" in status["api_usage"]["error"]
    table = cli("status")[1]
    assert "closed (never opened)" not in table
    assert "name no state table" in table


def test_status_says_when_the_api_usage_item_is_unreadable(aws: Cli) -> None:
    aws.world.dynamodb.put_item(TableName=STATE_TABLE, Item={"pk": {"S": "ORG#API_USAGE"}, "used": {"N": "5"}})

    status = json.loads(aws("status", "--json")[1])

    assert status["api_usage"]["error"].startswith("unreadable: API usage item lacks")


def test_interrupting_the_progress_leaves_the_task_running(aws: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a move task slower than one poll (1 message a second, 3 messages)
    dead_letters(aws, 3)

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    out = io.StringIO()
    code = run(["redrive-dlq", "--yes", "--limit", "1", "--json"], operations=aws.ops, out=out, sleep=interrupt)

    # Then the command stops watching (exit 1: not all moved yet), says the task goes on, and it does
    assert code == 1
    assert json.loads(out.getvalue())["status"] == "RUNNING"
    assert "the move task goes on" in capsys.readouterr().err
    task = aws.ops.dead_letter_move()
    assert task is not None
    assert task["Status"] == "RUNNING"


def test_the_local_loop_moves_everything_whatever_the_rate(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    # The local stack (no server-side move tasks) accepts --limit, says it does not apply, and moves every message
    dead_letters(cli, 3)

    code, output = cli("redrive-dlq", "--yes", "--limit", "1", "--json")

    assert code == 0
    assert json.loads(output)["moved"] == 3
    assert "the local stack's loop ignores it" in capsys.readouterr().err


# --- behaving like the CLIs operators know ---------------------------------------------------------------------


def test_the_stack_may_come_after_the_command(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    # A stack that does not exist: reading it is what proves --stack was taken (exit 3, not the usage error 2)
    assert run(["status", "--stack", "no-such-stack"]) == 3
    assert "no-such-stack" in capsys.readouterr().err


def test_nrtsync_stack_is_the_default_stack(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["status"], environ={"NRTSYNC_STACK": "from-the-environment"}) == 3
    assert "from-the-environment" in capsys.readouterr().err
    # and --local still wins over it: the (missing) local state file is what is read
    assert run(["--local", "--state-file", "/nonexistent/stack.json", "status"], environ={"NRTSYNC_STACK": "x"}) == 3
    assert "from-the-environment" not in capsys.readouterr().err


def test_missing_credentials_are_not_reported_as_a_missing_stack(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no credentials anywhere boto3 looks (moto's are environment variables)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = run(["--stack", "nrtsync-prod", "--region", "eu-west-1", "status"])

    assert code == 3
    err = capsys.readouterr().err
    assert err.startswith("nrtsync: error: no AWS credentials")
    assert "does not exist" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--stack", "no-such-stack", "retry"],  # no filter
        ["--stack", "no-such-stack", "retry", "--all"],  # asks, no terminal, no --yes
        ["--stack", "no-such-stack", "redrive-dlq"],  # asks, no terminal, no --yes
        ["--stack", "no-such-stack", "sessions", "--since", "soon"],  # argparse's own error
        ["--stack", "no-such-stack", "backfill", "--resume", "R1", "--object", "Account"],
        ["--local", "--state-file", "/nonexistent/stack.json", "backfill", "--detach"],
    ],
    ids=[
        "retry-no-filter",
        "retry-all-no-yes",
        "redrive-no-yes",
        "bad-duration",
        "resume-with-objects",
        "local-detach",
    ],
)
def test_usage_errors_exit_2_before_anything_is_contacted(
    cli: Cli, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # A stack that does not exist: contacting it would exit 3
    assert run(argv, stdin=io.StringIO()) == 2
    assert capsys.readouterr().err.startswith("nrtsync: error: ")


@pytest.mark.parametrize("argv", [["--stack", "no-such-stack", "status"], ["--stack", "x", "retry"]])
def test_errors_are_json_under_json(cli: Cli, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["--json", *argv], stdin=io.StringIO())

    error = json.loads(capsys.readouterr().err)
    assert error["exit_code"] == code
    assert code in (2, 3)
    assert error["error"]


@pytest.mark.parametrize(("answer", "code", "retried"), [("n\n", 1, 0), ("y\n", 0, 1)])
def test_retry_all_asks_first(cli: Cli, answer: str, code: int, retried: int) -> None:
    # Given one failure on the failure list
    cli.world.salesforce.refuse["A2"] = ("DUPLICATE_VALUE", "duplicate")
    cli.world.run(message(change("Account", "A2")))

    # When the operator retries them all and answers the question
    result, _ = cli("retry", "--all", stdin=Tty(answer))

    # Then a "no" retries nothing (exit 1), a "yes" retries it
    assert result == code
    waiting = cli.sqs.get_queue_attributes(QueueUrl=cli.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert int(waiting["Attributes"]["ApproximateNumberOfMessages"]) == retried


def test_every_command_has_a_description_its_defaults_and_an_example_in_its_help() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(EXAMPLES) == set(commands)
    for name, sub in commands.items():
        text = sub.format_help()
        assert sub.description, name
        assert f"example:\n  {EXAMPLES[name]}" in text, name
        # the example is a command line the parser takes
        example = shlex.split(EXAMPLES[name].split("#")[0])
        assert example[0] == "nrtsync"
        assert parser.parse_args(example[1:]).command == name
        # every option with a default says it in the help
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                flat = "".join(text.split())  # the help wraps its lines, at spaces and hyphens
                shown = f"(default:{action.default}".replace(" ", "")
                assert shown in flat or "default" in (action.help or ""), (name, action.dest)
    assert "how far back, e.g. 30m, 6h, 7d (default: 1h)" in commands["sessions"].format_help()
    assert "exit codes:" in parser.format_help()


class MappingInState:
    """Lambda's API for the sync function's event source mapping, as it answers while the mapping is in ``state``."""

    def __init__(self, state: str) -> None:
        self.state = state

    def list_event_source_mappings(self, **_: Any) -> dict[str, Any]:
        return {"EventSourceMappings": [{"UUID": "uuid-1", "State": self.state}]}

    def get_event_source_mapping(self, *, UUID: str) -> dict[str, Any]:  # noqa: N803 - boto3's parameter name
        return {"UUID": UUID, "State": self.state}


@pytest.mark.parametrize(
    ("state", "shown"), [("Disabling", "Disabling (changing state: in progress)"), ("Enabled", "Enabled")]
)
def test_status_shows_a_mapping_changing_state_as_in_progress_not_as_a_problem(
    aws: Cli, state: str, shown: str
) -> None:
    # Given the stack's sync function whose event source mapping is (still) changing state after a pause
    resources = StackResources(
        HISTORY_TABLE, aws.queue_url, aws.dlq_url, state_table=STATE_TABLE, stack_name=STACK, sync_function="sync"
    )
    mapping = MappingInState(state)
    ops = Operations(resources, dynamodb=aws.world.dynamodb, sqs=aws.sqs, lambda_client=mapping)
    out = io.StringIO()

    # When the operator asks for the status
    code = run(["status"], operations=ops, out=out)

    # Then the mapping's state is shown, a change in progress as such, and it makes nothing degraded
    assert (
        f"event source  {shown}" in " ".join(out.getvalue().split("  ")).replace("   ", "  ") or shown in out.getvalue()
    )
    assert "event source" in out.getvalue()
    assert code == 0
