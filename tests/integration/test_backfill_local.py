"""A backfill through real AWS APIs (moto in-process) and Zuora's HTTP API (the stand-in as a child process):
the CLI's local loop (``run_backfill_command`` / ``run_backfill_locally``) and the Lambda handler the state
machine invokes. Every record is queued once, every parent before every child, and the queue's backlog paces it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from botocore.exceptions import NoRegionError
from moto import mock_aws

from nrtsync.app.backfill import build_backfill
from nrtsync.ports.backfill import BackfillRun, BackfillStatus
from nrtsync.services.backfill.settings import BackfillPacingSettings, BackfillSettings
from nrtsync_cli.backfill_commands import BackfillTarget, backfill_admin, backfill_stepper, run_backfill_command
from nrtsync_cli.cli import UsageError, build_parser
from nrtsync_fakes.zuora import MemoryZuora
from nrtsync_local.standin.process import ZuoraStandinClient
from tests.support.lambda_context import FakeLambdaContext
from tests.support.sync_world import STATE_TABLE, create_tables
from tests.support.zuora import running_zuora_standin

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

REGION = "eu-west-1"
UPDATED = datetime(2026, 10, 1, tzinfo=UTC)
CHILDREN = ("Subscription", "Invoice", "Payment")


def _records(accounts: int) -> dict[str, list[dict[str, Any]]]:
    """``accounts`` accounts, each with one subscription, invoice and payment: 4 x ``accounts`` records."""
    stamp = UPDATED.isoformat()
    found: dict[str, list[dict[str, Any]]] = {"Account": []}
    for n in range(accounts):
        found["Account"].append({"Id": f"A{n:05d}", "UpdatedDate": stamp, "Name": f"Account {n}"})
        for child in CHILDREN:
            found.setdefault(child, []).append(
                {"Id": f"{child[:3]}{n:05d}", "UpdatedDate": stamp, "AccountId": f"A{n:05d}"}
                # A subscription version names its subscription: one Salesforce record per number.
                | ({"Name": f"A-S{n:08d}", "Version": 1} if child == "Subscription" else {})
            )
    return found


@dataclass
class Aws:
    queue_url: str
    target: BackfillTarget
    sqs: Any
    drained: list[dict[str, Any]]

    def drain(self) -> None:
        """What the sync function does to the queue, as far as the backfill can tell: takes its messages."""
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            self.drained += [json.loads(m["Body"]) for m in messages]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        create_tables(boto3.client("dynamodb", region_name=REGION))
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="callouts")["QueueUrl"]
        target = BackfillTarget(
            STATE_TABLE,
            queue_url,
            lambda service: boto3.client(service, region_name=REGION),  # type: ignore[call-overload]
        )
        yield Aws(queue_url, target, sqs, [])


def _assert_every_record_once_parents_first(drained: list[dict[str, Any]], accounts: int) -> None:
    keys = [(m["object_type"], m["record_id"]) for m in drained]
    assert len(keys) == len(set(keys)) == 4 * accounts
    kinds = [m["object_type"] for m in drained]
    assert max(i for i, k in enumerate(kinds) if k == "Account") < min(i for i, k in enumerate(kinds) if k != "Account")
    assert all(m["notification_id"].startswith("backfill:") for m in drained)


def test_the_local_loop_queues_5000_records_once_each_parents_first_and_waits_while_the_queue_is_full(
    aws: Aws,
) -> None:
    # Given 1,250 accounts with a subscription, an invoice and a payment each (5,000 records) in pages of 100, and
    # a backlog bound of 200 (moto's SQS slows with depth, so the queue is kept shallow; the rule is the same)
    zuora = MemoryZuora(page_size=100)
    for object_type, records in _records(1250).items():
        zuora.put(object_type, *records)
    pacing = BackfillPacingSettings.from_env(
        {"BACKFILL_MAX_QUEUE_BACKLOG": "200", "BACKFILL_WAIT_SECONDS": "7"}
    ).pacing()
    waits: list[float] = []
    deepest = 0

    def sync_meanwhile(seconds: float) -> None:
        # While the backfill waits, the sync function takes the queue's messages
        nonlocal deepest
        waits.append(seconds)
        deepest = max(
            deepest,
            int(
                aws.sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            ),
        )
        aws.drain()

    seen: list[BackfillRun] = []
    out = StringIO()
    args = build_parser().parse_args(["--local", "backfill"])

    # When `nrtsync --local backfill` runs
    code = run_backfill_command(
        args, out, sync_meanwhile, target=aws.target, zuora=zuora, progress=seen.append, pacing=pacing
    )
    aws.drain()

    # Then it finished, queued every record once, parents first, and gave way whenever the backlog passed 200:
    # never more than the bound and one page on the queue
    assert code == 0
    _assert_every_record_once_parents_first(aws.drained, 1250)
    assert set(waits) == {7}
    assert len(waits) >= 5000 // 300
    assert 200 < deepest <= 300
    assert any(run.status is BackfillStatus.WAITING and "backlog" in run.reason for run in seen)
    final = seen[-1]
    assert final.status is BackfillStatus.DONE
    assert {p.object_type: p.read for p in final.progress} == dict.fromkeys(("Account", *CHILDREN), 1250)
    table = out.getvalue()
    for object_type in ("Account", *CHILDREN):
        assert object_type in table
    assert f"{final.run_id}: done" in table


def test_backfill_status_lists_runs_and_shows_one(aws: Aws) -> None:
    zuora = MemoryZuora()
    zuora.put("Account", *_records(3)["Account"])
    args = build_parser().parse_args(["--local", "backfill", "--object", "Account"])
    assert run_backfill_command(args, StringIO(), lambda _: None, target=aws.target, zuora=zuora) == 0

    listing = StringIO()
    status = build_parser().parse_args(["--local", "backfill-status", "--json"])
    assert run_backfill_command(status, listing, lambda _: None, target=aws.target) == 0
    [row] = json.loads(listing.getvalue())
    assert (row["status"], row["objects"], row["read"], row["queued"]) == ("done", "Account", 3, 3)

    one = StringIO()
    show = build_parser().parse_args(["--local", "backfill-status", row["run_id"], "--json"])
    assert run_backfill_command(show, one, lambda _: None, target=aws.target) == 0
    assert json.loads(one.getvalue())["objects"][0]["read"] == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backfill", "--object", "Quote"], "--object Quote: not a mapped object"),
        (["backfill", "--since", "2026-12-01T00:00:00Z", "--until", "2026-11-01T00:00:00Z"], "--since"),
        (["backfill", "--resume", "x", "--object", "Account"], "--resume takes the run's own"),
        (["backfill", "--detach"], "--detach goes with --stack"),
    ],
)
def test_a_bad_request_exits_2_naming_the_option_and_creates_no_run(
    aws: Aws, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_backfill_command(
        build_parser().parse_args(["--local", *argv]), StringIO(), lambda _: None, target=aws.target
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert backfill_admin(aws.target, mapping=_mapping()).runs() == []


def test_an_unknown_run_to_resume_exits_3(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["--local", "backfill", "--resume", "nope"])
    assert run_backfill_command(args, StringIO(), lambda _: None, target=aws.target) == 3
    assert "no backfill run nope" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backfill", "--since", "yesterday"], "--since 'yesterday': not an ISO 8601 time"),
        (["backfill", "--until", "2026-12-01T00:00:00"], "--until '2026-12-01T00:00:00': give a UTC offset"),
    ],
)
def test_a_bad_time_is_refused_by_the_parser_naming_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        build_parser().parse_args(["--local", *argv])


class LongContext(FakeLambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 900_000  # the function's timeout: a step reads pages for 840 s


def _context() -> LambdaContext:
    return cast("LambdaContext", LongContext())


def test_the_handler_steps_a_run_to_done_as_the_state_machine_loops_it(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the backfill function's environment and a run created by the CLI's service
    from functions.backfill import app  # noqa: PLC0415 - after the environment is set

    environment = {"CALLOUT_QUEUE_URL": aws.queue_url, "SYNC_STATE_TABLE": STATE_TABLE, "ZUORA_SECRET_ID": "z"}
    zuora = MemoryZuora(page_size=500)
    for object_type, records in _records(300).items():
        zuora.put(object_type, *records)
    settings = BackfillSettings.from_env(environment | {"BACKFILL_MAX_QUEUE_BACKLOG": "600"})
    app.service.use(build_backfill(settings, zuora=zuora))
    try:
        run = backfill_admin(aws.target, mapping=_mapping()).create()
        # When the state machine invokes the function until it answers done (draining as the sync would)
        statuses = []
        for _ in range(50):
            payload = app.lambda_handler({"run_id": run.run_id}, _context())
            statuses.append(payload["status"])
            if payload["status"] in {"done", "failed"}:
                break
            aws.drain()
        aws.drain()
    finally:
        app.service.use(None)

    # Then it waited for the queue, then finished, with every record queued once, parents first
    assert statuses[-1] == "done"
    assert "waiting" in statuses
    _assert_every_record_once_parents_first(aws.drained, 300)
    # And a malformed input fails without a stack trace, naming the field
    assert app.lambda_handler({"run": 1}, _context())["reason"].startswith("run_id:")
    assert monkeypatch is not None


def _mapping() -> Any:
    from nrtsync.domain.mapping import load_mapping  # noqa: PLC0415

    return load_mapping()


# -- through Zuora's HTTP API: the stand-in, credentials from the ZuoraSecret in moto -------------------------


@pytest.fixture(scope="module")
def standin() -> Iterator[ZuoraStandinClient]:
    with running_zuora_standin() as client:
        yield client


def test_the_local_loop_reads_the_zuora_standin_with_the_credentials_of_the_zuora_secret(
    aws: Aws, standin: ZuoraStandinClient
) -> None:
    # Given the stand-in's tenant (pages of 100) and its OAuth client in the local stack's ZuoraSecret
    standin.reset()
    standin.configure(page_size=100, token_seconds=3599)
    for object_type, records in _records(120).items():
        standin.seed(object_type, records)
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secret = {"base_url": standin.url, "client_id": standin.client_id, "client_secret": standin.client_secret}
    secrets.create_secret(Name="local-ZuoraSecret", SecretString=json.dumps(secret))
    target = BackfillTarget(
        STATE_TABLE,
        aws.queue_url,
        aws.target.client,
        values={"zuora_secret_id": "local-ZuoraSecret", "zuora_ca_file": standin.ca_file},
    )

    # When `nrtsync --local backfill --since ... ` runs
    args = build_parser().parse_args(["--local", "backfill", "--since", (UPDATED - timedelta(days=1)).isoformat()])
    code = run_backfill_command(args, StringIO(), lambda _: aws.drain(), target=target)
    aws.drain()

    # Then the records came over HTTP, page by page, each queued once, parents first
    assert code == 0
    _assert_every_record_once_parents_first(aws.drained, 120)
    counts = standin.stats()["counts"]
    assert counts["query"] == 4
    assert counts["queryMore"] == 4 * 1


def test_a_refused_zuora_credential_fails_the_run_with_its_reason(aws: Aws, standin: ZuoraStandinClient) -> None:
    standin.reset()
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secret = {"base_url": standin.url, "client_id": standin.client_id, "client_secret": "wrong"}
    secrets.create_secret(Name="bad-ZuoraSecret", SecretString=json.dumps(secret))
    target = BackfillTarget(STATE_TABLE, aws.queue_url, aws.target.client, values={"zuora_ca_file": standin.ca_file})
    out = StringIO()
    args = build_parser().parse_args(["--local", "backfill", "--zuora-secret-id", "bad-ZuoraSecret"])
    assert run_backfill_command(args, out, lambda _: None, target=target) == 1
    assert "failed (ZuoraAuthError" in out.getvalue()


# -- --stack: the run is created here, the state machine steps it ------------------------------------------------


def _state_machine(target: BackfillTarget) -> str:
    role = "arn:aws:iam::123456789012:role/backfill"
    definition = (Path(__file__).resolve().parents[2] / "statemachine" / "backfill.asl.json").read_text()
    arn: str = target.client("stepfunctions").create_state_machine(
        name="nrtsync-backfill", definition=definition, roleArn=role
    )["stateMachineArn"]
    return arn


def test_with_a_stack_the_run_is_started_on_the_state_machine_and_followed_to_its_summary(aws: Aws) -> None:
    # Given a deployed stack's state machine (moto records executions; the test steps the run as Lambda would)
    arn = _state_machine(aws.target)
    target = BackfillTarget(STATE_TABLE, aws.queue_url, aws.target.client, state_machine_arn=arn)
    zuora = MemoryZuora(page_size=2)
    zuora.put("Account", *_records(5)["Account"])
    stepper = backfill_stepper(target, mapping=_mapping(), zuora=zuora)
    polls: list[str] = []

    def meanwhile_lambda_steps(seconds: float) -> None:
        [execution] = target.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]
        polls.append(execution["name"])
        stepper.run(execution["name"].rsplit("-", 1)[0], deadline=1e12)

    out = StringIO()
    args = build_parser().parse_args(["--stack", "nrtsync-test", "backfill", "--object", "Account"])

    # When `nrtsync --stack ... backfill` runs (no Zuora client here: the function has it)
    code = run_backfill_command(args, out, meanwhile_lambda_steps, target=target, progress=lambda _: None)

    # Then one execution was started with the run's id as input, followed until done, and summarised
    assert code == 0
    [execution] = target.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]
    described = target.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    run_id = json.loads(described["input"])["run_id"]
    assert execution["name"].startswith(run_id)
    assert polls
    assert f"{run_id}: done" in out.getvalue()
    aws.drain()
    assert len(aws.drained) == 5


def test_detach_starts_the_execution_and_returns_the_run_id(aws: Aws) -> None:
    arn = _state_machine(aws.target)
    target = BackfillTarget(STATE_TABLE, aws.queue_url, aws.target.client, state_machine_arn=arn)
    out = StringIO()
    args = build_parser().parse_args(["--stack", "nrtsync-test", "backfill", "--detach", "--json"])
    assert run_backfill_command(args, out, lambda _: pytest.fail("--detach must not wait"), target=target) == 0
    answer = json.loads(out.getvalue())
    assert answer["execution_arn"].startswith(arn.replace(":stateMachine:", ":execution:"))
    run = backfill_admin(target, mapping=_mapping()).view(answer["run_id"])
    assert run.objects == tuple(_mapping().write_order())
    assert run.status is BackfillStatus.RUNNING


def test_an_execution_that_ends_before_its_run_stops_the_following_with_how_to_resume(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run whose execution is stopped (as by Lambda errors past the retries) while the run is unfinished
    arn = _state_machine(aws.target)
    target = BackfillTarget(STATE_TABLE, aws.queue_url, aws.target.client, state_machine_arn=arn)
    sfn = target.client("stepfunctions")

    def execution_dies(seconds: float) -> None:
        for execution in sfn.list_executions(stateMachineArn=arn)["executions"]:
            sfn.stop_execution(executionArn=execution["executionArn"], error="Lambda.Unknown")

    args = build_parser().parse_args(["--stack", "nrtsync-test", "backfill", "--object", "Account"])

    # When the CLI follows it
    code = run_backfill_command(args, StringIO(), execution_dies, target=target, progress=lambda _: None)

    # Then it stops following (exit 3) and says how to go on
    assert code == 3
    err = capsys.readouterr().err
    assert "ended ABORTED before the run did" in err
    assert "nrtsync backfill --resume" in err


def test_the_cli_builds_every_client_from_its_own_session_so_no_default_region_is_needed(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given an operator's machine with no default region (the CLI's --region names it for its own session)
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(NoRegionError):
        boto3.client("sqs")
    # Then the backfill service builds (and lists runs) with the target's clients alone
    assert backfill_admin(aws.target, mapping=_mapping()).runs() == []
