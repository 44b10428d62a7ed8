"""``nrtsync`` (or ``python -m nrtsync_cli``): a stack's status, Sync History and failure list, for operators.

Exit codes: 0 done (``status``: healthy), 1 some items could not be handled (``status``: degraded), 2 wrong usage
(nothing contacted), 3 the stack could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO

import boto3
from botocore.exceptions import NoCredentialsError, NoRegionError, ProfileNotFound

from nrtsync import __version__
from nrtsync.adapters.aws.state import RecordLeasedError
from nrtsync.services.backfill.admin import BackfillRequestError
from nrtsync_cli.alarm_commands import add_alarm_commands, run_alarm_command
from nrtsync_cli.backfill_commands import _check_options as check_backfill_options
from nrtsync_cli.backfill_commands import add_backfill_commands, run_backfill_command
from nrtsync_cli.breaker_commands import BREAKER_COMMANDS, add_breaker_commands
from nrtsync_cli.check import CHECK_COMMAND, add_check_command, resolve_sources, run_check
from nrtsync_cli.dashboard import CloudWatchSource, MetricSource
from nrtsync_cli.dashboard_command import (
    add_dashboard_command,
    dashboard_body_of_stack,
    local_target,
    write_dashboard,
)
from nrtsync_cli.errors import EXIT_NOT_ALL, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, report_error
from nrtsync_cli.local_state import LOCAL_STACK_FILE, LocalStateError, read_local_state
from nrtsync_cli.operations import ACTIVE_MOVE_STATES, OperationError, Operations, StackResources
from nrtsync_cli.permissions import SALESFORCE_COMMAND, add_salesforce_command, required_fields, run_permissions
from nrtsync_cli.plan_command import PLAN_COMMAND, add_plan_command, run_plan
from nrtsync_cli.reconcile_command import add_reconcile_command, run_reconcile_command
from nrtsync_cli.render import ProgressBar, print_table
from nrtsync_cli.zuora_setup import ZUORA_COMMAND, TargetError, add_zuora_command, resolve_side, run_zuora

# StartMessageMoveTask's MaxNumberOfMessagesPerSecond is at most 500 (SQS API Reference, StartMessageMoveTask).
MAX_MOVE_RATE = 500
# How often redrive-dlq asks ListMessageMoveTasks for progress.
MOVE_POLL_SECONDS = 2.0
NO_TARGET = (
    "say which stack: --stack NAME (a deployed stack), --local (the one `make local` runs), or set NRTSYNC_STACK"
)
# The stack a command targets when neither --stack nor --local is given.
STACK_VARIABLE = "NRTSYNC_STACK"
# One example per command, shown by `nrtsync COMMAND --help` (a unit test parses each).
EXAMPLES = {
    "status": "nrtsync --stack nrtsync-prod status        # exit 0 healthy, 1 degraded, 3 unreachable",
    "sessions": "nrtsync --stack nrtsync-prod sessions --since 6h",
    "trail": "nrtsync --stack nrtsync-prod trail Account 2c92a0f96abc1234",
    "failures": "nrtsync --stack nrtsync-prod failures --code FIELD_CUSTOM_VALIDATION_EXCEPTION --json",
    "retry": "nrtsync --stack nrtsync-prod retry --code FIELD_CUSTOM_VALIDATION_EXCEPTION   # after fixing the cause",
    "redrive-dlq": "nrtsync --stack nrtsync-prod redrive-dlq --limit 20",
    "pause": 'nrtsync --stack nrtsync-prod pause --reason "Salesforce release 20:00-22:00"',
    "resume": 'nrtsync --stack nrtsync-prod resume --reason "release done"',
    "plan": "nrtsync plan --changes-per-day 200000 --licences 50",
    "backfill": "nrtsync --stack nrtsync-prod backfill --object Account --since 2026-01-01T00:00:00Z",
    "backfill-status": "nrtsync --stack nrtsync-prod backfill-status",
    "reconcile": "nrtsync --stack nrtsync-prod reconcile --deletes   # one pass now, with the lost-deletes sweep",
    "dashboard": "nrtsync --stack nrtsync-prod dashboard --since 6h --output prod.html",
    "forget": "nrtsync --stack nrtsync-prod forget Account 2c92a0f96abc1234",
    "alarm-test": "nrtsync --stack nrtsync-prod alarm-test --alarm nrtsync-prod-dead-letters",
    "zuora": "nrtsync --stack nrtsync-prod zuora setup --dry-run   # then without --dry-run; `zuora check` after",
    "check": "nrtsync --stack nrtsync-prod check --json   # exit 0 only when nothing blocks syncing",
    "salesforce": "nrtsync --stack nrtsync-prod salesforce permissions   # the permission set, as metadata XML",
}
EPILOG = f"""\
The stack: --stack NAME, --local, or the environment variable {STACK_VARIABLE}; before or after the command,
like --json, --region and --profile.

exit codes:
  0  done (status: healthy)
  1  some items not handled, a confirmation declined (status: degraded: an alarm in ALARM, the breaker
     open, dead letters waiting)
  2  usage: nothing was contacted
  3  the stack could not be read (no such stack, no credentials, no local state file)

Errors go to stderr and start with "nrtsync: error:"; under --json they are one JSON object
{{"error": ..., "exit_code": ...}}.
"""
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 6h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


SESSION_COLUMNS = [
    ("started_at", "started"),
    ("duration_ms", "ms"),
    ("records_in", "in"),
    ("written", "written"),
    ("superseded", "superseded"),
    ("duplicates", "dup"),
    ("stale_skipped", "stale"),
    ("waiting", "waiting"),
    ("failed", "failed"),
    ("api_calls", "api calls"),
    ("api_usage_percent", "api %"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p90_ms", "p90 ms"),
]
TRAIL_COLUMNS = [
    ("received_at", "received"),
    ("updated_date", "zuora updated"),
    ("status", "status"),
    ("source", "source"),
    ("salesforce_id", "salesforce id"),
    ("sync_ms", "sync ms"),
    ("error_code", "error"),
    ("notification_id", "notification"),
    ("session_id", "session"),
]
FAILURE_COLUMNS = [
    ("failed_at", "failed"),
    ("object_type", "object"),
    ("record_id", "zuora id"),
    ("error_code", "code"),
    ("error_message", "message"),
    ("receive_count", "tries"),
]


class UsageError(ValueError):
    """The command line asks for something that cannot be: exit 2 with the message, before anything is contacted."""


class _Parser(argparse.ArgumentParser):
    """argparse's own errors raised as ``UsageError``, so they are reported like every other error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help; the examples and exit codes kept as written."""


def _options(*, top: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after the command's name (``--json failures`` or
    ``failures --json``, ``--stack X status`` or ``status --stack X``). After it, an option not given leaves the
    value before it untouched (SUPPRESS): a subparser's defaults would otherwise overwrite what the main parser
    read."""
    options = argparse.ArgumentParser(add_help=False)
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    # No default target: a command meant for the local stack must never land on a deployed one, or back.
    where = options.add_mutually_exclusive_group()
    where.add_argument(
        "--stack",
        help=f"a deployed stack's name (reads its Outputs; AWS credentials as boto3 finds them; or {STACK_VARIABLE})",
        **unset,
    )
    where.add_argument(
        "--local",
        action="store_true",
        help=f"the stack `make local` runs (endpoint and names from {LOCAL_STACK_FILE})",
        **unset,
    )
    options.add_argument(
        "--state-file", type=Path, help=f"with --local: the local stack's state file (else {LOCAL_STACK_FILE})", **unset
    )
    options.add_argument("--json", action="store_true", help="print JSON instead of a table", **unset)
    options.add_argument("--region", help="with --stack: the AWS region (else as boto3 finds it)", **unset)
    options.add_argument("--profile", help="with --stack: the AWS profile of ~/.aws/config", **unset)
    return options


def add_command(commands: Any, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand with a description, its defaults and an example in its help, that takes the common options
    (``--stack``, ``--local``, ``--json``, ``--region``, ``--profile``) too."""
    example = EXAMPLES.get(name)
    sub: argparse.ArgumentParser = commands.add_parser(
        name,
        help=text,
        description=text[:1].upper() + text[1:] + ".",
        epilog=f"example:\n  {example}" if example else None,
        formatter_class=_HelpFormatter,
        parents=[_options(top=False)],
    )
    return sub


def _rate(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 1 <= value <= MAX_MOVE_RATE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate of 1 to {MAX_MOVE_RATE} messages per second")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nrtsync",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_command(commands, "status", "queue and DLQ depth, oldest message, breaker, API usage, last session, alarms")

    sessions = add_command(commands, "sessions", "recent sync sessions with their counts and latencies")
    sessions.add_argument("--since", type=_duration, default="1h", help="how far back, e.g. 30m, 6h, 7d")
    sessions.add_argument("--limit", type=int, default=50, help="at most this many sessions")

    trail = add_command(commands, "trail", "one record's trail from callout to Salesforce Id")
    trail.add_argument("object_type", help="Zuora object, e.g. Account")
    trail.add_argument("record_id", help="the Zuora Id")

    for name, text in (("failures", "the failure list"), ("retry", "retry failures after their cause is fixed")):
        sub = add_command(commands, name, text)
        sub.add_argument("--object", dest="object_type", help="only this Zuora object type")
        sub.add_argument("--code", dest="error_code", help="only this Salesforce error code")
        if name == "retry":
            sub.add_argument("--all", action="store_true", help="retry every failure (needed without a filter)")
            sub.add_argument("--dry-run", action="store_true", help="show what would be retried")
            sub.add_argument("--yes", action="store_true", help="--all without asking (needed without a terminal)")

    forget = add_command(
        commands, "forget", "forget one record's version state (for a wrong future date that got in): asks first"
    )
    forget.add_argument("object_type", help="Zuora object, e.g. Account")
    forget.add_argument("record_id", help="the Zuora Id")
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")

    redrive = add_command(commands, "redrive-dlq", "move the dead-letter queue's messages back to the callout queue")
    redrive.add_argument("--dry-run", action="store_true", help="show how many messages would move; move none")
    redrive.add_argument(
        "--limit",
        type=_rate,
        metavar="PER_SECOND",
        help=f"move at most this many messages per second (1-{MAX_MOVE_RATE}; SQS's "
        "MaxNumberOfMessagesPerSecond). Default: SQS chooses. There is no count limit: every message moves",
    )
    redrive.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    redrive.add_argument("--no-wait", action="store_true", help="start the move and return; do not show progress")
    add_breaker_commands(lambda name, text: add_command(commands, name, text))
    add_plan_command(lambda name, text: add_command(commands, name, text))
    add_backfill_commands(lambda name, text: add_command(commands, name, text))
    add_reconcile_command(lambda name, text: add_command(commands, name, text))
    add_dashboard_command(lambda name, text: add_command(commands, name, text), _duration)
    add_alarm_commands(lambda name, text: add_command(commands, name, text))
    add_zuora_command(lambda name, text: add_command(commands, name, text))
    add_check_command(lambda name, text: add_command(commands, name, text))
    add_salesforce_command(lambda name, text: add_command(commands, name, text))
    return parser


def _local_operations(state_file: Path) -> Operations:
    """Operations on the stack ``make local`` runs, reached at the moto endpoint its state file names."""
    try:
        local = read_local_state(state_file, "history_table", "queue_url", "dlq_url")
    except LocalStateError as exc:
        raise OperationError(str(exc)) from exc
    values = local.values
    resources = StackResources(
        values["history_table"], values["queue_url"], values["dlq_url"], state_table=values.get("state_table")
    )
    # No CloudWatch: the local stack deploys no alarms and moto publishes no SQS metrics. No server-side
    # redrive: moto 5.2 does not implement StartMessageMoveTask, so the local stack keeps the receive loop.
    return Operations(resources, dynamodb=local.client("dynamodb"), sqs=local.client("sqs"))


def _aws_session(*, region: str | None, profile: str | None) -> boto3.Session:
    """One boto3 Session (``--profile``, ``--region``) for every client of a command, with credentials."""
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        session.client("cloudformation")  # fails now, not mid-command, without a region
    except ProfileNotFound as exc:
        raise UsageError(f"--profile {profile}: {exc}") from exc
    except NoRegionError as exc:
        raise UsageError("no AWS region: give --region, or a --profile (or AWS_REGION) that names one") from exc
    if session.get_credentials() is None:
        # Else describe_stacks fails with a message that reads like a missing stack.
        raise OperationError(
            "no AWS credentials: give --profile, set AWS_PROFILE, or log in (aws configure / aws sso login)"
        ) from NoCredentialsError()
    return session


def _aws_operations(stack: str, *, region: str | None, profile: str | None) -> Operations:
    """Operations on a deployed stack, every client from one session."""
    session = _aws_session(region=region, profile=profile)
    cloudformation, cloudwatch = session.client("cloudformation"), session.client("cloudwatch")
    dynamodb, sqs = session.client("dynamodb"), session.client("sqs")
    return Operations(
        StackResources.from_stack(stack, cloudformation),
        dynamodb=dynamodb,
        sqs=sqs,
        cloudwatch=cloudwatch,
        server_side_redrive=True,
        lambda_client=session.client("lambda"),
    )


def _usage_error(args: argparse.Namespace, *, given: bool, interactive: bool) -> str | None:
    """What is wrong with the command line, found before anything is contacted."""
    checks = [
        (args.stack and args.local, "--stack and --local: say one"),
        (args.state_file and not args.local, "--state-file goes with --local"),
        (not (given or args.stack or args.local), NO_TARGET),
        (
            args.command == "retry" and not (args.all or args.object_type or args.error_code),
            "say which failures to retry: --object, --code, or --all",
        ),
        (_asks(args) and not interactive, f"no terminal to confirm on: add --yes to {args.command} without asking"),
    ]
    wrong = next((message for failed, message in checks if failed), None)
    if wrong is None and args.command == "backfill":
        try:
            check_backfill_options(args)
        except BackfillRequestError as exc:
            wrong = str(exc)
    return wrong


def _asks(args: argparse.Namespace) -> bool:
    """Whether the command will ask for confirmation (``--yes`` and ``--dry-run`` ask nothing)."""
    asking = args.command in {"redrive-dlq", "forget"} or (args.command == "retry" and args.all)
    return asking and not (args.yes or getattr(args, "dry_run", False))


def _parse(argv: list[str], environ: Mapping[str, str], *, given: bool, interactive: bool) -> argparse.Namespace:
    """The command line, with ``NRTSYNC_STACK`` as the default stack; ``UsageError`` for anything wrong in it."""
    args = build_parser().parse_args(argv)
    if args.command == PLAN_COMMAND:
        return args
    if not (args.stack or args.local) and environ.get(STACK_VARIABLE):
        args.stack = environ[STACK_VARIABLE]
    if args.command == SALESFORCE_COMMAND and not (args.stack or args.local):
        return args  # the permission set from the mapping alone: no stack to reach
    usage = _usage_error(args, given=given, interactive=interactive)
    if usage:
        raise UsageError(usage)
    return args


@dataclass
class Terminal:
    """Where a command writes and asks: injected by tests (a prompt needs a TTY; progress polls with a pause)."""

    out: TextIO
    stdin: TextIO
    sleep: Callable[[float], None] = time.sleep


def run(
    argv: Sequence[str] | None = None,
    *,
    operations: Operations | None = None,
    out: TextIO = sys.stdout,
    stdin: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one command; returns the exit code. ``operations`` given, it is the target and no flag is needed."""
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv
    environ = os.environ if environ is None else environ
    terminal = Terminal(out, stdin or sys.stdin, sleep)
    try:
        args = _parse(argv, environ, given=operations is not None, interactive=terminal.stdin.isatty())
        offline = _offline(args, out)
        if offline is not None:
            return offline
        if args.command in (ZUORA_COMMAND, CHECK_COMMAND, SALESFORCE_COMMAND):
            return _zuora_or_check(args, out, as_json=as_json)
        if operations is None and args.stack:
            operations = _aws_operations(args.stack, region=args.region, profile=args.profile)
        elif operations is None:
            if args.region or args.profile:
                print("note: --region and --profile are ignored with --local (the state file says)", file=sys.stderr)
            operations = _local_operations(args.state_file or LOCAL_STACK_FILE)
        return _dispatch(args, operations, terminal)
    except UsageError as exc:
        return report_error(f"{exc} (nrtsync --help)", EXIT_USAGE, as_json=as_json)
    except OperationError as exc:
        return report_error(str(exc), EXIT_UNREACHABLE, as_json=as_json)


def _offline(args: argparse.Namespace, out: TextIO) -> int | None:
    """The commands that need no stack: the planner's arithmetic, the permission set from the mapping alone."""
    if args.command == PLAN_COMMAND:
        return run_plan(args, out)
    if args.command == SALESFORCE_COMMAND and not (args.stack or args.local):
        return run_permissions(args, out)
    return None


def _zuora_or_check(args: argparse.Namespace, out: TextIO, *, as_json: bool) -> int:
    try:
        if args.command == CHECK_COMMAND:
            return run_check(args, out, resolve_sources(args, LOCAL_STACK_FILE))
        if args.command == SALESFORCE_COMMAND:
            return run_permissions(args, out, required=required_fields(args, LOCAL_STACK_FILE))
        return run_zuora(args, out, resolve_side(args), sys.stderr)
    except TargetError as exc:
        return report_error(str(exc), EXIT_UNREACHABLE, as_json=as_json)


def main() -> int:
    """The ``nrtsync`` console script."""
    return run()


def _show(
    rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]], args: argparse.Namespace, out: TextIO
) -> None:
    if args.json:
        print(json.dumps(rows, default=str, indent=2), file=out)
    elif rows:
        print_table(rows, columns, out)
    else:
        print("(none)", file=out)


def _sessions(args: argparse.Namespace, ops: Operations, out: TextIO) -> int:
    _show(ops.sessions(since=args.since, limit=args.limit), SESSION_COLUMNS, args, out)
    return 0


def _trail(args: argparse.Namespace, ops: Operations, out: TextIO) -> int:
    rows = ops.trail(args.object_type, args.record_id)
    _show(rows, TRAIL_COLUMNS, args, out)
    return 0 if rows else 1


def _failures(args: argparse.Namespace, ops: Operations, out: TextIO) -> int:
    _show(ops.failures(object_type=args.object_type, error_code=args.error_code), FAILURE_COLUMNS, args, out)
    return 0


def _retry(args: argparse.Namespace, ops: Operations, term: Terminal) -> int:
    out = term.out
    chosen = ops.failures(object_type=args.object_type, error_code=args.error_code)
    if args.dry_run:
        _show(chosen, FAILURE_COLUMNS, args, out)
        return EXIT_OK
    if not chosen:
        _say(args, out, {"retried": 0, "not_retried": 0}, "no failures to retry")
        return EXIT_OK
    if args.all:
        refused = _refused(args, f"Retry all {len(chosen)} failures on the failure list?", term, verb="retry")
        if refused is not None:
            return refused
    done, failed = ops.retry_failures(chosen, progress=ProgressBar("retrying"))
    _say(args, out, {"retried": done, "not_retried": failed}, f"retried {done}, could not retry {failed}")
    return EXIT_NOT_ALL if failed else EXIT_OK


# -- status ----------------------------------------------------------------------------------------------------
def _age(age: dict[str, Any]) -> str:
    if age["seconds"] is None:
        return str(age["note"])
    return f"{age['seconds']:.0f} s (CloudWatch, minute of {age['at']})"


def _event_source_row(mapping: dict[str, Any] | None) -> list[tuple[str, str]]:
    # A mapping between states (a pause or resume landing) is in progress, not a failure.
    if mapping is None:
        return []
    note = " (changing state: in progress)" if mapping["in_progress"] else ""
    return [("event source", f"{mapping['state']}{note}" + (f": {mapping['error']}" if mapping.get("error") else ""))]


def _status_rows(status: dict[str, Any]) -> list[dict[str, Any]]:
    queue, dlq = status["queue"], status["dead_letter_queue"]
    breaker, usage, session, alarms = status["breaker"], status["api_usage"], status["last_session"], status["alarms"]
    rows = [
        ("callout queue", f"{queue['visible']} waiting, {queue['in_flight']} in flight, {queue['delayed']} delayed"),
        *_event_source_row(status.get("event_source")),
        ("oldest message", _age(queue["oldest_message_age"])),
        ("dead letters", f"{dlq['visible']} waiting, {dlq['in_flight']} in flight"),
    ]
    if breaker is None:
        rows.append(("breaker", "closed (never opened)"))
    elif "error" in breaker:
        rows.append(("breaker", str(breaker["error"])))
    else:
        rows.append(
            (
                "breaker",
                f"{breaker.get('state')} since {breaker.get('since')} by {breaker.get('by')}: "
                f"{breaker.get('reason')} {breaker.get('message') or ''}".rstrip(),
            )
        )
    if usage is None:
        rows.append(("api usage", "not seen yet"))
    elif "error" in usage:
        rows.append(("api usage", str(usage["error"])))
    else:
        rows.append(
            ("api usage", f"{usage['percent']}% ({usage['used']} of {usage['limit']}, at {usage['observed_at']})")
        )
    if session is None:
        rows.append(("last session", "none in the last 7 days"))
    else:
        rows.append(
            (
                "last session",
                f"{session.get('started_at')}: {session.get('records_in')} in, {session.get('written')} written, "
                f"{session.get('waiting')} waiting, {session.get('failed')} failed",
            )
        )
    if alarms is None:
        rows.append(("alarms", "none on the local stack"))
    else:
        firing = [a["name"] for a in alarms if a["state"] == "ALARM"]
        summary = f"{len(alarms)} alarms, {len(firing)} in ALARM"
        rows.append(("alarms", summary + (f": {', '.join(firing)}" if firing else "")))
    return [{"what": what, "value": value} for what, value in rows]


def degraded(status: dict[str, Any]) -> list[str]:
    """Why the stack is not healthy: alarms in ALARM, the breaker open (or unreadable), dead letters waiting."""
    problems = [f"alarm {a['name']} in ALARM" for a in status["alarms"] or [] if a["state"] == "ALARM"]
    breaker = status["breaker"]
    if breaker is not None and "error" in breaker:
        problems.append(f"breaker unknown: {breaker['error']}")
    elif breaker is not None and breaker.get("state") == "open":
        problems.append(f"breaker open: {breaker.get('reason')}")
    dead = status["dead_letter_queue"]
    if dead["visible"] or dead["in_flight"]:
        problems.append(f"{dead['visible'] + dead['in_flight']} dead letters waiting")
    return problems


def _status(args: argparse.Namespace, ops: Operations, out: TextIO) -> int:
    """Exit 0 when healthy, 1 when degraded (``degraded``), so that it can serve as a health check."""
    status = ops.status()
    problems = degraded(status)
    if args.json:
        print(json.dumps(status | {"healthy": not problems, "problems": problems}, default=str, indent=2), file=out)
        return EXIT_NOT_ALL if problems else EXIT_OK
    print_table(_status_rows(status), [("what", ""), ("value", "")], out)
    if status["alarms"]:
        print(file=out)
        print_table(status["alarms"], [("state", "state"), ("since", "since"), ("name", "alarm")], out)
    print(file=out)
    print("healthy" if not problems else "degraded: " + "; ".join(problems), file=out)
    return EXIT_NOT_ALL if problems else EXIT_OK


# -- redrive-dlq -----------------------------------------------------------------------------------------------
def _say(args: argparse.Namespace, out: TextIO, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, default=str) if args.json else text, file=out)


def _redrive(args: argparse.Namespace, ops: Operations, term: Terminal) -> int:
    res = ops.resources
    if ops.server_side_redrive:
        running = ops.dead_letter_move()
        if running is not None and running.get("Status") in ACTIVE_MOVE_STATES:
            message = f"a move task is already running on the DLQ: {_move_summary(running)}"
            return report_error(message, EXIT_NOT_ALL, as_json=args.json)
    waiting = ops.dead_letter_count()
    how = "StartMessageMoveTask" if ops.server_side_redrive else "receive, send, delete (local stack)"
    plan = {"dead_letters": waiting, "from": res.dlq_url, "to": res.queue_url, "how": how, "max_per_second": args.limit}
    if waiting == 0:
        _say(args, term.out, plan | {"moved": 0}, "the dead-letter queue is empty: nothing to move")
        return 0
    if args.dry_run:
        text = f"would move {waiting} messages from {res.dlq_url} to {res.queue_url} ({how})"
        _say(args, term.out, plan | {"moved": 0, "dry_run": True}, text)
        return 0
    refused = _refused(args, f"Move {waiting} messages from the dead-letter queue back to {res.queue_url}?", term)
    if refused is not None:
        return refused
    if ops.server_side_redrive:
        return _move_server_side(args, ops, term, plan)
    if args.limit is not None:
        print("note: --limit is a StartMessageMoveTask rate; the local stack's loop ignores it", file=sys.stderr)
    moved, failed = ops.redrive_dead_letters(progress=ProgressBar("redriving"))
    text = f"moved {moved} messages back to the callout queue, {failed} could not be moved"
    _say(args, term.out, plan | {"moved": moved, "not_moved": failed}, text)
    return 1 if failed else 0


def _refused(args: argparse.Namespace, question: str, term: Terminal, *, verb: str = "move") -> int | None:
    """``None`` to go ahead (``--yes`` or the operator said yes), else the exit code."""
    if args.yes:
        return None
    if not term.stdin.isatty():  # found before anything was contacted too (_usage_error); kept for safety
        message = f"no terminal to confirm on: add --yes to {verb} without asking"
        return report_error(message, EXIT_USAGE, as_json=args.json)
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    if term.stdin.readline().strip().lower() in {"y", "yes"}:
        return None
    print(f"nothing done: did not {verb}", file=sys.stderr)
    return EXIT_NOT_ALL


def _forget(args: argparse.Namespace, ops: Operations, term: Terminal) -> int:
    what = f"{args.object_type} {args.record_id}"
    state = ops.record_state(args.object_type, args.record_id)
    if state is None:
        _say(args, term.out, {"record": what, "forgotten": False}, f"{what} has no sync state: nothing to forget")
        return 1
    shown = ", ".join(f"{k}={v}" for k, v in sorted(state.items()) if not k.startswith("kept_"))
    question = (
        f"Forget the sync state of {what} ({shown})? Its next change is then written whatever its date, and its "
        "Salesforce record is kept as it is."
    )
    refused = _refused(args, question, term, verb="forget")
    if refused is not None:
        return refused
    try:
        old = ops.forget_record(args.object_type, args.record_id)
    except RecordLeasedError as exc:
        return report_error(str(exc), EXIT_NOT_ALL, as_json=args.json)
    text = f"forgot the sync state of {what}" if old else f"{what} had no sync state any more"
    _say(args, term.out, {"record": what, "forgotten": old is not None, "was": old}, text)
    return 0


def _move_server_side(args: argparse.Namespace, ops: Operations, term: Terminal, plan: dict[str, Any]) -> int:
    handle = ops.start_dead_letter_move(rate=args.limit)
    if args.no_wait:
        text = f"started moving {plan['dead_letters']} messages (task {handle}); `status` shows the DLQ draining"
        _say(args, term.out, plan | {"task_handle": handle, "status": "RUNNING"}, text)
        return 0
    task = _follow_move(ops, term)
    _say(args, term.out, plan | {"task_handle": handle, **_move_fields(task)}, _move_summary(task))
    return 0 if task.get("Status") == "COMPLETED" else 1


def _follow_move(ops: Operations, term: Terminal) -> dict[str, Any]:
    """Polls ListMessageMoveTasks until the task leaves RUNNING/CANCELLING, with a progress bar on stderr.

    Interrupted (Ctrl-C), it returns the last task seen: only the watching stops, the task runs on server side.
    """
    bar = ProgressBar("moving")
    task: dict[str, Any] = {"Status": "RUNNING"}
    try:
        while True:
            task = ops.dead_letter_move() or {"Status": "FAILED", "FailureReason": "the move task disappeared"}
            moved, total = _move_counts(task)
            if task.get("Status") not in ACTIVE_MOVE_STATES:
                bar(moved, max(total, moved))
                return task
            if total:
                bar(moved, total)
            term.sleep(MOVE_POLL_SECONDS)
    except KeyboardInterrupt:
        print("\nstopped watching; the move task goes on (`status` shows the DLQ draining)", file=sys.stderr)
        return task


def _move_counts(task: dict[str, Any]) -> tuple[int, int]:
    return int(task.get("ApproximateNumberOfMessagesMoved", 0)), int(task.get("ApproximateNumberOfMessagesToMove", 0))


def _move_fields(task: dict[str, Any]) -> dict[str, Any]:
    moved, total = _move_counts(task)
    return {"status": task.get("Status"), "moved": moved, "to_move": total, "failure": task.get("FailureReason")}


def _move_summary(task: dict[str, Any]) -> str:
    fields = _move_fields(task)
    text = f"{fields['status']}: moved {fields['moved']} of {fields['to_move']} messages back to the callout queue"
    return text + (f" ({fields['failure']})" if fields["failure"] else "")


# A command: (its arguments, the stack, where to print) -> exit code. pause/resume register here too.
_COMMANDS: dict[str, Callable[[argparse.Namespace, Operations, TextIO], int]] = {
    "status": _status,
    "sessions": _sessions,
    "trail": _trail,
    "failures": _failures,
    **BREAKER_COMMANDS,
}
# Commands that ask or wait take the whole terminal.
_INTERACTIVE: dict[str, Callable[[argparse.Namespace, Operations, Terminal], int]] = {
    "redrive-dlq": _redrive,
    "retry": _retry,
    "dashboard": lambda args, ops, term: _dashboard(args, ops, term.out),
    "forget": _forget,
    # A backfill builds its own clients (it also starts the state machine and reads the Zuora secret).
    "backfill": lambda args, _ops, term: run_backfill_command(args, term.out, term.sleep),
    "backfill-status": lambda args, _ops, term: run_backfill_command(args, term.out, term.sleep),
    # One reconcile pass: in this process on the local stack, or the stack's function invoked.
    "reconcile": lambda args, _ops, term: run_reconcile_command(args, term.out),
    # Builds its own CloudWatch client: it writes alarm state, which the read-only operations never do.
    "alarm-test": lambda args, _ops, term: run_alarm_command(args, term.out, term.sleep),
}


def _dashboard(args: argparse.Namespace, ops: Operations, out: TextIO) -> int:
    source: MetricSource
    if args.stack:
        cloudwatch = _aws_session(region=args.region, profile=args.profile).client("cloudwatch")
        body, source = dashboard_body_of_stack(args.stack, cloudwatch), CloudWatchSource(cloudwatch)
    else:
        body, source = local_target(args.state_file or LOCAL_STACK_FILE)
    write_dashboard(args, ops, out, body=body, source=source)
    return EXIT_OK


def _dispatch(args: argparse.Namespace, ops: Operations, term: Terminal) -> int:
    if args.command in _INTERACTIVE:
        return _INTERACTIVE[args.command](args, ops, term)
    return _COMMANDS[args.command](args, ops, term.out)
