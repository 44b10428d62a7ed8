"""``nrtsync pause`` / ``nrtsync resume``: the circuit breaker by hand (``status`` reads it through ``Operations``).

``pause --reason TEXT`` opens the breaker with reason ``MANUAL`` (the probe never closes it) and disables the sync
function's SQS event source mapping: changes wait on the queue without being received. ``resume --reason TEXT``
closes it, whatever opened it, and enables the mapping. On a deployed stack the mapping is switched with the
operator's credentials (``lambda:ListEventSourceMappings`` and ``lambda:UpdateEventSourceMapping``); on the local
stack through the file the running stack's poller watches (``event_source_file`` in ``.local/stack.json``).
"""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore
from nrtsync.adapters.aws.event_source import LambdaEventSourceSwitch
from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.ports.breaker import BreakerState, BreakerUnavailableError, EventSourceBusyError, EventSourceSwitch
from nrtsync.ports.queue import QueueUnavailableError
from nrtsync.services.breaker.service import pause, resume
from nrtsync_cli.errors import EXIT_NOT_ALL, EXIT_UNREACHABLE, EXIT_USAGE, report_error
from nrtsync_cli.local_state import LOCAL_STACK_FILE, LocalStateError, read_local_state
from nrtsync_cli.stack_outputs import StackReadError, read_stack_outputs

if TYPE_CHECKING:
    from nrtsync_cli.operations import Operations


class BreakerTargetError(RuntimeError):
    """The stack's breaker could not be reached (no such stack, output or local state file)."""


@dataclass
class BreakerTarget:
    """The breaker's state item and the sync function's event source mapping of one stack."""

    store: DynamoBreakerStore
    switch: EventSourceSwitch

    @classmethod
    def of_stack(cls, stack_name: str, session: boto3.Session | None = None) -> BreakerTarget:
        session = session or boto3.Session()
        try:
            outputs = read_stack_outputs(session.client("cloudformation"), stack_name)
            table, function = outputs["SyncStateTableName"], outputs["SyncFunctionName"]
            queue_arn = SqsChangeQueue(outputs["CalloutQueueUrl"], client=session.client("sqs")).arn()
        except StackReadError as exc:
            raise BreakerTargetError(str(exc)) from exc
        except (ClientError, BotoCoreError, QueueUnavailableError) as exc:
            raise BreakerTargetError(f"cannot read stack {stack_name}: {exc}") from exc
        return cls(
            DynamoBreakerStore(table, client=session.client("dynamodb")),
            LambdaEventSourceSwitch(function, queue_arn, client=session.client("lambda")),
        )

    @classmethod
    def of_local(cls, state_file: Path) -> BreakerTarget:
        try:
            local = read_local_state(state_file, "state_table", "event_source_file")
        except LocalStateError as exc:
            raise BreakerTargetError(str(exc)) from exc
        table, switch_file = str(local.values["state_table"]), Path(str(local.values["event_source_file"]))
        return cls(DynamoBreakerStore(table, client=local.client("dynamodb")), FileSwitch(switch_file))


class FileSwitch:
    """The local stack's mapping flag: the JSON file its poller watches (``nrtsync_local.poller.MappingSwitch``)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def set_enabled(self, enabled: bool) -> None:
        if not self._path.parent.exists():
            raise BreakerUnavailableError(f"{self._path.parent} does not exist (is `make local` running?)")
        partial = self._path.with_suffix(".tmp")
        partial.write_text(json.dumps({"enabled": enabled}), encoding="utf-8")
        partial.replace(self._path)


def add_breaker_commands(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Registers ``pause`` and ``resume`` through the CLI's ``add`` (a subcommand with the common options)."""
    for name, text in (
        ("pause", "stop the sync receiving (circuit breaker open, reason MANUAL); changes wait on the queue"),
        ("resume", "let the sync receive again (circuit breaker closed), whatever opened it"),
    ):
        sub = add(name, text)
        sub.add_argument("--reason", required=True, help="why, for the breaker's record and the on-call log")
        sub.add_argument("--by", default=None, help="who (default: your login name); recorded as operator:<by>")


def breaker_target(args: argparse.Namespace) -> BreakerTarget:
    if getattr(args, "stack", None):
        # --region / --profile, where the CLI has them (issue 11's on-call options), pick the operator's session.
        try:
            session = boto3.Session(
                profile_name=getattr(args, "profile", None), region_name=getattr(args, "region", None)
            )
        except BotoCoreError as exc:
            raise BreakerTargetError(str(exc)) from exc
        return BreakerTarget.of_stack(args.stack, session)
    return BreakerTarget.of_local(getattr(args, "state_file", None) or LOCAL_STACK_FILE)


def breaker_status(state: BreakerState) -> dict[str, Any]:
    """The breaker's rows for ``status`` (and ``pause``/``resume``'s answer), JSON-ready."""
    return {
        "breaker": "open" if state.is_open else "closed",
        "reason": state.reason.value if state.reason else None,
        "message": state.message,
        "since": state.since.isoformat() if state.since else None,
        "by": state.by,
        "consecutive_failures": state.failures,
    }


def run_breaker_command(
    args: argparse.Namespace, _ops: Operations | None, out: TextIO, *, target: BreakerTarget | None = None
) -> int:
    """``pause`` or ``resume``: 0 done, 1 the state was written but the mapping not switched, 2 usage, 3 unreachable."""
    by = f"operator:{args.by or getpass.getuser()}"
    action = pause if args.command == "pause" else resume
    try:
        target = target or breaker_target(args)
        state = action(target.store, target.switch, args.reason, by=by, now=datetime.now(UTC))
    except ValueError as exc:
        return report_error(str(exc), EXIT_USAGE, as_json=getattr(args, "json", False))
    except BreakerTargetError as exc:
        return report_error(str(exc), EXIT_UNREACHABLE, as_json=getattr(args, "json", False))
    except EventSourceBusyError as exc:
        # The state is written; the mapping is still finishing an earlier change (Enabling, Disabling, Updating).
        print(
            f"{args.command} recorded; the event source mapping is changing state ({exc}): in progress, run "
            f"`nrtsync {args.command}` again in a minute to make sure it lands",
            file=out,
        )
        return 0
    except BreakerUnavailableError as exc:
        message = f"{exc}; run `nrtsync {args.command}` again"
        return report_error(message, EXIT_NOT_ALL, as_json=getattr(args, "json", False))
    row = breaker_status(state)
    if getattr(args, "json", False):
        print(json.dumps(row, indent=2), file=out)
    else:
        verb = "paused" if state.is_open else "resumed"
        print(f"sync {verb} by {state.by}: {state.message}", file=out)
    return 0


BREAKER_COMMANDS = {"pause": run_breaker_command, "resume": run_breaker_command}
