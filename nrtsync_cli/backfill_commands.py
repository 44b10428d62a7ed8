"""``nrtsync backfill`` and ``nrtsync backfill-status``: the initial load or a replay of Zuora's records.

With ``--stack`` the run is created in the stack's state table and the backfill state machine
(``BackfillStateMachineArn`` output) runs it in Lambda; the command follows its items until it ends (or returns at
once with ``--detach``). With ``--local`` the function's step service runs in this process against the local
stack's moto endpoint (``.local/stack.json``), step after step, as the state machine would
(``run_backfill_locally``, which the benchmarks drive too). Either way a run resumes from its checkpoints:
``--resume ID``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.api_usage import DynamoApiUsageStore
from nrtsync.adapters.aws.backfill_store import DynamoBackfillStore
from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore
from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints
from nrtsync.adapters.zuora import ZuoraClient
from nrtsync.app.backfill import assemble_backfill_step, build_backfill_admin
from nrtsync.app.shared import LazyZuora
from nrtsync.domain.mapping import MappingConfig, load_mapping
from nrtsync.domain.models.zuora import ZuoraCredentials
from nrtsync.ports.backfill import BackfillRun, BackfillStatus
from nrtsync.ports.state import StateUnavailableError
from nrtsync.services.backfill.admin import BackfillAdmin, BackfillNotFoundError, BackfillRequestError, summary
from nrtsync.services.backfill.settings import BackfillPacingSettings
from nrtsync.services.backfill.step import BackfillStep, Pacing
from nrtsync.services.sweep.service import DEFAULT_PAGE_RESERVE_S
from nrtsync_cli.errors import EXIT_UNREACHABLE, EXIT_USAGE, report_error
from nrtsync_cli.local_state import LOCAL_STACK_FILE, LocalStateError, read_local_state
from nrtsync_cli.render import print_table
from nrtsync_cli.stack_outputs import StackReadError, read_stack_outputs

if TYPE_CHECKING:
    from nrtsync.ports.zuora import ZuoraPort

LOCAL_STEP_SECONDS = 5.0
"""A local step reads pages for about this long, then reports progress (the sweep keeps a page's time in reserve)."""
STACK_POLL_SECONDS = 10.0
SUMMARY_COLUMNS = [
    ("object", "object"),
    ("state", "state"),
    ("pages", "pages"),
    ("read", "read"),
    ("queued", "queued"),
    ("malformed", "malformed"),
    ("seconds", "seconds"),
    ("records_per_second", "records/s"),
]
RUN_COLUMNS = [
    ("run_id", "run"),
    ("status", "status"),
    ("objects", "objects"),
    ("since", "since"),
    ("until", "until"),
    ("read", "read"),
    ("queued", "queued"),
    ("updated_at", "updated"),
    ("reason", "reason"),
]

Progress = Callable[[BackfillRun], None]


class BackfillCommandError(RuntimeError):
    """The run could not be created, found or followed; the message says why (exit 3)."""


def iso_time(option: str) -> Callable[[str], datetime]:
    """An argparse type: an ISO 8601 time with its UTC offset; a bad value names ``option``."""

    def parse(text: str) -> datetime:
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"{option} {text!r}: not an ISO 8601 time such as 2026-01-31T00:00:00+00:00"
            ) from exc
        if value.tzinfo is None:
            raise argparse.ArgumentTypeError(f"{option} {text!r}: give a UTC offset (e.g. +00:00 or Z)")
        return value

    return parse


def add_backfill_commands(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    backfill = add("backfill", "load (or replay) Zuora's records into Salesforce through the callout queue")
    backfill.add_argument(
        "--object",
        dest="objects",
        action="append",
        default=[],
        metavar="OBJECT",
        help="a mapped Zuora object (repeatable; default: every mapped object, parents first)",
    )
    backfill.add_argument("--since", type=iso_time("--since"), help="ISO 8601 with offset (default: 2006-01-01Z)")
    backfill.add_argument("--until", type=iso_time("--until"), help="ISO 8601 with offset (default: now, fixed)")
    backfill.add_argument("--resume", metavar="ID", help="go on with an existing run (after a stop or a failure)")
    backfill.add_argument("--detach", action="store_true", help="with --stack: start the run and return")
    backfill.add_argument(
        "--mapping", help="the mapping file the functions use (SyncMappingPath), to check --object against"
    )
    backfill.add_argument(
        "--zuora-secret-id",
        help="with --local: the ZuoraSecret in the local stack (default: the state file's zuora_secret_id)",
    )
    status = add("backfill-status", "backfill runs and their progress (one run's objects with its ID)")
    status.add_argument("run_id", nargs="?", help="a run's id (default: list every run)")


# -- building the service --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillTarget:
    """Where a backfill runs: the state table and queue, clients for them, the state machine on AWS."""

    state_table: str
    queue_url: str
    client: Callable[[str], Any]
    state_machine_arn: str | None = None
    values: Mapping[str, Any] | None = None

    @classmethod
    def of_stack(cls, stack: str, session: boto3.Session) -> BackfillTarget:
        try:
            outputs = read_stack_outputs(session.client("cloudformation"), stack)
            return cls(
                state_table=outputs["SyncStateTableName"],
                queue_url=outputs["CalloutQueueUrl"],
                client=session.client,  # type: ignore[arg-type]
                state_machine_arn=outputs["BackfillStateMachineArn"],
            )
        except StackReadError as exc:
            raise BackfillCommandError(str(exc)) from exc

    @classmethod
    def of_local(cls, state_file: Any) -> BackfillTarget:
        try:
            local = read_local_state(state_file, "state_table", "queue_url")
        except LocalStateError as exc:
            raise BackfillCommandError(str(exc)) from exc
        return cls(local.values["state_table"], local.values["queue_url"], local.client, values=local.values)


def backfill_admin(target: BackfillTarget, *, mapping: MappingConfig) -> BackfillAdmin:
    """The layer's backfill administration on ``target``'s state table (its client from the target, not the env)."""
    return build_backfill_admin(target.state_table, mapping=mapping, dynamodb=target.client("dynamodb"))


def backfill_stepper(
    target: BackfillTarget, *, mapping: MappingConfig, zuora: ZuoraPort, pacing: Pacing | None = None
) -> BackfillStep:
    """The layer's step service on ``target``'s tables and queue, for a run this process steps itself (the
    pacing bounds default to the function's)."""
    dynamodb = target.client("dynamodb")
    queue = SqsChangeQueue(target.queue_url, client=target.client("sqs"))
    return assemble_backfill_step(
        pacing=pacing or BackfillPacingSettings().pacing(),
        mapping=mapping,
        zuora=zuora,
        store=DynamoBackfillStore(target.state_table, client=dynamodb),
        checkpoints=DynamoSweepCheckpoints(target.state_table, client=dynamodb),
        backlog=queue,
        api_usage=DynamoApiUsageStore(target.state_table, client=dynamodb),
        breaker=DynamoBreakerStore(target.state_table, client=dynamodb),
        sink=queue,
        versions=DynamoVersionStore(target.state_table, client=dynamodb),
    )


def local_zuora(target: BackfillTarget, secret_id: str | None) -> ZuoraPort:
    """Zuora's client from the local stack's ZuoraSecret (in moto): the stand-in's or a real tenant's credentials.

    The state file's ``zuora_secret_id`` names it (and ``zuora_ca_file`` the stand-in's CA, trusted for this
    client only); ``--zuora-secret-id`` overrides.
    """
    values = target.values or {}
    name = secret_id or values.get("zuora_secret_id")
    if not name:
        raise BackfillCommandError(
            "the local stack names no Zuora secret (zuora_secret_id in its state file): give --zuora-secret-id"
        )
    try:
        document = json.loads(target.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
        credentials = ZuoraCredentials.model_validate(document)
    except (ClientError, BotoCoreError, ValueError, KeyError) as exc:
        raise BackfillCommandError(f"cannot read the Zuora secret {name} from the local stack: {exc}") from exc
    session = requests.Session()
    if values.get("zuora_ca_file"):
        # The stand-in's throwaway CA, for this session only (REQUESTS_CA_BUNDLE would beat session.verify).
        session.trust_env = False
        session.verify = str(values["zuora_ca_file"])
    return ZuoraClient(credentials, session=session)


# -- running -------------------------------------------------------------------------------------------------


def run_backfill_locally(
    stepper: BackfillStep,
    admin: BackfillAdmin,
    run_id: str,
    *,
    on_progress: Progress | None = None,
    step_seconds: float = LOCAL_STEP_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> BackfillRun:
    """Steps the run until it is done or failed, as the state machine does: again at once after ``running``,
    after ``wait_seconds`` after ``waiting``. Returns the run as last stored."""
    while True:
        result = stepper.run(run_id, deadline=monotonic() + DEFAULT_PAGE_RESERVE_S + step_seconds)
        if on_progress is not None:
            on_progress(admin.live(result.run))
        if result.status in (BackfillStatus.DONE, BackfillStatus.FAILED):
            return result.run
        if result.status is BackfillStatus.WAITING:
            sleep(result.wait_seconds)


def start_execution(target: BackfillTarget, run_id: str) -> str:
    """Starts the state machine on ``run_id``; returns the execution's ARN."""
    name = f"{run_id}-{datetime.now(UTC):%H%M%S}"
    try:
        response = target.client("stepfunctions").start_execution(
            stateMachineArn=target.state_machine_arn, name=name, input=json.dumps({"run_id": run_id})
        )
    except (ClientError, BotoCoreError) as exc:
        raise BackfillCommandError(f"cannot start the backfill state machine: {exc}") from exc
    return str(response["executionArn"])


def follow(
    service: BackfillAdmin,
    run_id: str,
    *,
    on_progress: Progress,
    sleep: Callable[[float], None],
    execution_status: Callable[[], str] = lambda: "RUNNING",
    poll_seconds: float = STACK_POLL_SECONDS,
) -> BackfillRun:
    """Polls the run's items (the run and its cursors) until it is done or failed, or its execution ended
    without ending it (Lambda errors past the retries, the history limit): then ``--resume`` goes on."""
    while True:
        run = service.view(run_id)
        on_progress(run)
        if run.status in (BackfillStatus.DONE, BackfillStatus.FAILED):
            return run
        status = execution_status()
        if status != "RUNNING":
            run = service.view(run_id)
            if run.status in (BackfillStatus.DONE, BackfillStatus.FAILED):
                return run
            raise BackfillCommandError(
                f"the execution of run {run_id} ended {status} before the run did: "
                f"see its history in Step Functions, then `nrtsync backfill --resume {run_id}`"
            )
        sleep(poll_seconds)


def execution_status(target: BackfillTarget, execution_arn: str) -> Callable[[], str]:
    """Reads the execution's status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED). An execution that ended
    by starting its continuation (before Step Functions' history limit) answers ``{"continued_in": arn}``: the
    status is then the continuation's, followed as far as it goes."""
    current = [execution_arn]

    def status() -> str:
        while True:
            try:
                described = target.client("stepfunctions").describe_execution(executionArn=current[-1])
            except (ClientError, BotoCoreError) as exc:
                raise BackfillCommandError(f"cannot read the execution {current[-1]}: {exc}") from exc
            continued_in = _continuation(described) if described["status"] == "SUCCEEDED" else None
            if continued_in is None:
                return str(described["status"])
            print(f"continued in {continued_in}", file=sys.stderr)
            current.append(continued_in)

    return status


def _continuation(described: Mapping[str, Any]) -> str | None:
    try:
        output = json.loads(described.get("output") or "null")
    except ValueError:
        return None
    continued_in = output.get("continued_in") if isinstance(output, dict) else None
    return continued_in if isinstance(continued_in, str) else None


class ProgressLine:
    """Per object pages, records and rate (there is no total up front: ZOQL has no count). A carriage-return
    line on a terminal, plain lines otherwise (a log keeps one line per report)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._tty = stream.isatty()

    def __call__(self, run: BackfillRun) -> None:
        parts = []
        for row in summary(run, now=datetime.now(UTC)):
            if row["state"] == "not started":
                continue
            rate = f" {row['records_per_second']}/s" if row["records_per_second"] else ""
            mark = " done" if row["state"] == "done" else ""
            parts.append(f"{row['object']}{mark} {row['pages']} pages {row['read']} read {row['queued']} queued{rate}")
        text = f"{run.run_id} {run.status.value}: " + (" | ".join(parts) or "starting")
        if run.status is BackfillStatus.WAITING and run.reason:
            text += f" (waiting: {run.reason})"
        if self._tty:
            print(f"\r\x1b[2K{text}", end="", file=self._stream, flush=True)
        else:
            print(text, file=self._stream, flush=True)

    def close(self) -> None:
        if self._tty:
            print(file=self._stream, flush=True)


# -- the commands ----------------------------------------------------------------------------------------------


def run_backfill_command(
    args: argparse.Namespace,
    out: TextIO,
    sleep: Callable[[float], None],
    *,
    target: BackfillTarget | None = None,
    zuora: ZuoraPort | None = None,
    progress: Progress | None = None,
    pacing: Pacing | None = None,
) -> int:
    """``backfill`` and ``backfill-status``; returns the exit code (2 a bad option, 3 the stack, 1 a failed run).

    ``target``, ``zuora``, ``progress`` and ``pacing`` (the bounds of a local run) replace what the arguments
    would choose: for tests and the benchmarks."""
    try:
        mapping = _mapping(getattr(args, "mapping", None))
        resolved = target or _target(args)
        if args.command == "backfill-status":
            return _status(args, backfill_admin(resolved, mapping=mapping), out)
        _check_options(args)
        return _backfill(
            args, out, sleep, target=resolved, mapping=mapping, zuora=zuora, progress=progress, pacing=pacing
        )
    except BackfillRequestError as exc:
        return report_error(str(exc), EXIT_USAGE, as_json=getattr(args, "json", False))
    except (BackfillNotFoundError, BackfillCommandError, StateUnavailableError) as exc:
        return report_error(str(exc), EXIT_UNREACHABLE, as_json=getattr(args, "json", False))


def _backfill(
    args: argparse.Namespace,
    out: TextIO,
    sleep: Callable[[float], None],
    *,
    target: BackfillTarget,
    mapping: MappingConfig,
    zuora: ZuoraPort | None,
    progress: Progress | None,
    pacing: Pacing | None,
) -> int:
    local = not target.state_machine_arn
    admin = backfill_admin(target, mapping=mapping)
    if args.resume:
        run = admin.reopen(args.resume)
    else:
        run = admin.create(parse_objects(args.objects), args.since, args.until)
    print(
        f"backfill run {run.run_id}: {', '.join(run.objects)} "
        f"from {run.since:%Y-%m-%dT%H:%M:%SZ} to {run.until:%Y-%m-%dT%H:%M:%SZ}",
        file=sys.stderr,
    )
    line = progress or ProgressLine()
    if local:
        port = zuora or LazyZuora(lambda: local_zuora(target, args.zuora_secret_id))
        stepper = backfill_stepper(target, mapping=mapping, zuora=port, pacing=pacing)
        final = run_backfill_locally(stepper, admin, run.run_id, on_progress=line, sleep=sleep)
    else:
        execution = start_execution(target, run.run_id)
        print(f"started {execution}", file=sys.stderr)
        if args.detach:
            _say(args, out, {"run_id": run.run_id, "execution_arn": execution}, run.run_id)
            return 0
        final = follow(
            admin,
            run.run_id,
            on_progress=line,
            sleep=sleep,
            execution_status=execution_status(target, execution),
        )
    if isinstance(line, ProgressLine):
        line.close()
    return _summary(args, final, out)


def _mapping(path: str | None) -> MappingConfig:
    try:
        return load_mapping(path)
    except (OSError, ValueError) as exc:
        raise BackfillRequestError(f"--mapping {path}: {exc}") from exc


def _check_options(args: argparse.Namespace) -> None:
    if args.resume and (args.objects or args.since or args.until):
        raise BackfillRequestError("--resume takes the run's own objects and window")
    if args.detach and not args.stack:
        raise BackfillRequestError("--detach goes with --stack (a local run lives in this process)")


def _target(args: argparse.Namespace) -> BackfillTarget:
    if args.stack:
        try:
            session = boto3.Session(profile_name=args.profile, region_name=args.region)
        except BotoCoreError as exc:
            raise BackfillCommandError(str(exc)) from exc
        return BackfillTarget.of_stack(args.stack, session)
    return BackfillTarget.of_local(args.state_file or LOCAL_STACK_FILE)


def _say(args: argparse.Namespace, out: TextIO, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, default=str) if args.json else text, file=out)


def _summary(args: argparse.Namespace, run: BackfillRun, out: TextIO) -> int:
    rows = summary(run)
    if args.json:
        print(json.dumps({**_run_row(run), "objects": rows}, default=str), file=out)
    else:
        print_table(rows, SUMMARY_COLUMNS, out)
        print(f"{run.run_id}: {run.status.value}" + (f" ({run.reason})" if run.reason else ""), file=out)
    return 0 if run.status is BackfillStatus.DONE else 1


def _status(args: argparse.Namespace, service: BackfillAdmin, out: TextIO) -> int:
    if args.run_id:
        _summary(args, service.view(args.run_id), out)
        return 0
    rows = [_run_row(service.live(run)) for run in service.runs()]
    if args.json:
        print(json.dumps(rows, default=str), file=out)
    else:
        print_table(rows, RUN_COLUMNS, out)
    return 0


def _run_row(run: BackfillRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "objects": ",".join(run.objects),
        "since": run.since.isoformat(),
        "until": run.until.isoformat(),
        "read": sum(p.read for p in run.progress),
        "queued": sum(p.queued for p in run.progress),
        "updated_at": run.updated_at.isoformat() if run.updated_at else "",
        "reason": run.reason,
    }


def parse_objects(values: Iterable[str]) -> list[str]:
    """``--object A --object B`` and ``--object A,B`` alike."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]
