"""``python -m nrtsync``: the Sync History view and the failure list, for operators.

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

from nrtsync.operations import OperationError, Operations, StackResources

LOCAL_STACK_FILE = Path(".local/stack.json")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 6h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], out: TextIO) -> None:
    cells = [[("" if row.get(key) is None else str(row.get(key))) for key, _ in columns] for row in rows]
    widths = [max([len(title)] + [len(c[i]) for c in cells]) for i, (_, title) in enumerate(columns)]
    print("  ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)), file=out)


class ProgressBar:
    """A one-line progress bar on stderr, so piping stdout stays clean."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self._label, self._stream, self._width = label, stream, width

    def __call__(self, done: int, total: int) -> None:
        filled = int(self._width * done / total) if total else self._width
        bar = "#" * filled + "." * (self._width - filled)
        end = "\n" if done >= total else ""
        print(f"\r{self._label} [{bar}] {done}/{total}", end=end, file=self._stream, flush=True)


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
    parser = argparse.ArgumentParser(prog="python -m nrtsync", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", help="a deployed stack's name (reads its Outputs)")
    where.add_argument("--local", action="store_true", help=f"the local stack ({LOCAL_STACK_FILE}, the default)")
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
    return parser


def _resources(args: argparse.Namespace) -> StackResources:
    if args.stack:
        return StackResources.from_stack(args.stack)
    if not LOCAL_STACK_FILE.exists():
        raise OperationError(f"no --stack given and {LOCAL_STACK_FILE} does not exist (is `make local` running?)")
    local = json.loads(LOCAL_STACK_FILE.read_text())
    return StackResources(local["history_table"], local["queue_url"], local["dlq_url"])


def run(argv: Sequence[str] | None = None, *, operations: Operations | None = None, out: TextIO = sys.stdout) -> int:
    """Run one command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        ops = operations or Operations(_resources(args))
        return _dispatch(args, ops, out)
    except OperationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


def _show(
    rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]], args: argparse.Namespace, out: TextIO
) -> None:
    if args.json:
        print(json.dumps(rows, default=str, indent=2), file=out)
    elif rows:
        _table(rows, columns, out)
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
}


def _dispatch(args: argparse.Namespace, ops: Operations, out: TextIO) -> int:
    return _COMMANDS[args.command](args, ops, out)
