"""``nrtsync`` (or ``python -m nrtsync_cli``): the Sync History view and the failure list, for operators.

Exit codes: 0 done, 1 some items could not be handled, 2 wrong usage, 3 the stack could not be reached.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import boto3

from nrtsync_cli.breaker_commands import BREAKER_COMMANDS, add_breaker_commands
from nrtsync_cli.operations import OperationError, Operations, StackResources
from nrtsync_cli.render import ProgressBar, print_table

LOCAL_STACK_FILE = Path(".local/stack.json")
NO_TARGET = "say which stack: --stack NAME (a deployed stack) or --local (the one `make local` runs)"
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nrtsync", description=__doc__.splitlines()[0])
    # No default target: a command meant for the local stack must never land on a deployed one, or back.
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--stack", help="a deployed stack's name (reads its Outputs; AWS credentials as boto3 finds them)"
    )
    where.add_argument(
        "--local", action="store_true", help=f"the stack `make local` runs (endpoint and names from {LOCAL_STACK_FILE})"
    )
    parser.add_argument(
        "--state-file", type=Path, help=f"with --local: the local stack's state file (default {LOCAL_STACK_FILE})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    commands = parser.add_subparsers(dest="command", required=True)

    sessions = commands.add_parser("sessions", help="recent sync sessions with their counts and latencies")
    sessions.add_argument("--since", type=_duration, default=timedelta(hours=1), help="e.g. 30m, 6h, 7d")
    sessions.add_argument("--limit", type=int, default=50)

    trail = commands.add_parser("trail", help="one record's trail from callout to Salesforce Id")
    trail.add_argument("object_type", help="Zuora object, e.g. Account")
    trail.add_argument("record_id", help="the Zuora Id")

    for name, text in (("failures", "the failure list"), ("retry", "retry failures after their cause is fixed")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--object", dest="object_type", help="only this Zuora object type")
        sub.add_argument("--code", dest="error_code", help="only this Salesforce error code")
        if name == "retry":
            sub.add_argument("--all", action="store_true", help="retry every failure (needed without a filter)")
            sub.add_argument("--dry-run", action="store_true", help="show what would be retried")

    commands.add_parser("redrive-dlq", help="move the dead-letter queue's messages back to the callout queue")
    add_breaker_commands(commands)
    return parser


def _local_operations(state_file: Path) -> Operations:
    """Operations on the stack ``make local`` runs, reached at the moto endpoint its state file names."""
    try:
        local = json.loads(state_file.read_text(encoding="utf-8"))
        resources = StackResources(local["history_table"], local["queue_url"], local["dlq_url"])
        endpoint, region = str(local["aws_endpoint_url"]), str(local["region"])
    except FileNotFoundError as exc:
        raise OperationError(f"{state_file} does not exist (is `make local` running?)") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OperationError(f"{state_file} is not a local stack's state file: {exc!r}") from exc
    # moto takes any keys; fixed ones mean an operator's real AWS credentials are never sent to the local stack.
    session = boto3.Session(
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - a placeholder moto accepts, not a secret
        region_name=region,
    )
    return Operations(
        resources,
        dynamodb=session.client("dynamodb", endpoint_url=endpoint),
        sqs=session.client("sqs", endpoint_url=endpoint),
    )


def _usage_error(args: argparse.Namespace, *, given: bool) -> str | None:
    if args.state_file and not args.local:
        return "--state-file goes with --local"
    if not (given or args.stack or args.local):
        return NO_TARGET
    return None


def run(argv: Sequence[str] | None = None, *, operations: Operations | None = None, out: TextIO = sys.stdout) -> int:
    """Run one command; returns the exit code. ``operations`` given, it is the target and no flag is needed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    usage = _usage_error(args, given=operations is not None)
    if usage:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {usage}", file=sys.stderr)
        return 2
    try:
        if operations is None and args.stack:
            operations = Operations(StackResources.from_stack(args.stack))
        elif operations is None:
            operations = _local_operations(args.state_file or LOCAL_STACK_FILE)
        return _dispatch(args, operations, out)
    except OperationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


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


def _retry(args: argparse.Namespace, ops: Operations, out: TextIO) -> int:
    if not (args.all or args.object_type or args.error_code):
        print("error: say which failures to retry: --object, --code, or --all", file=sys.stderr)
        return 2
    chosen = ops.failures(object_type=args.object_type, error_code=args.error_code)
    if args.dry_run:
        _show(chosen, FAILURE_COLUMNS, args, out)
        return 0
    done, failed = ops.retry_failures(chosen, progress=ProgressBar("retrying"))
    print(f"retried {done}, could not retry {failed}", file=out)
    return 1 if failed else 0


def _redrive(args: argparse.Namespace, ops: Operations, out: TextIO) -> int:
    moved, failed = ops.redrive_dead_letters(progress=ProgressBar("redriving"))
    print(f"moved {moved} messages back to the callout queue, {failed} could not be moved", file=out)
    return 1 if failed else 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, Operations, TextIO], int]] = {
    "sessions": _sessions,
    "trail": _trail,
    "failures": _failures,
    "retry": _retry,
    "redrive-dlq": _redrive,
    **BREAKER_COMMANDS,
}


def _dispatch(args: argparse.Namespace, ops: Operations, out: TextIO) -> int:
    return _COMMANDS[args.command](args, ops, out)
