"""``nrtsync reconcile``: one reconcile pass now, and with ``--deletes`` the sweep for deletes whose callout was lost.

With ``--local`` the reconcile service runs in this process against the local stack (its moto tables and queue,
the Zuora credentials of its ZuoraSecret), as ``backfill --local`` does. With ``--stack`` the stack's
ReconcileFunction is invoked as its schedule invokes it, the event asking for the deletes sweep when told to.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore
from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.adapters.aws.sweep_store import DynamoSweepCheckpoints
from nrtsync.app.reconcile import build_reconcile
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.zuora import ZuoraError
from nrtsync.ports.zuora import ZuoraPort
from nrtsync.services.reconcile.service import ReconcileResult
from nrtsync.services.reconcile.settings import ReconcileSettings
from nrtsync_cli.backfill_commands import BackfillCommandError, BackfillTarget, local_zuora
from nrtsync_cli.local_state import LOCAL_STACK_FILE

LOCAL_RUN_SECONDS = 600.0
"""A local pass gets the time a scheduled invocation has (the function's timeout)."""


def add_reconcile_command(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    reconcile = add("reconcile", "run one reconcile pass now (Zuora's changes whose callouts were lost)")
    reconcile.add_argument(
        "--deletes",
        action="store_true",
        help="also look for deletes whose callouts were lost (reads every Id of every mapped object)",
    )
    reconcile.add_argument(
        "--zuora-secret-id",
        help="with --local: the ZuoraSecret in the local stack (default: the state file's zuora_secret_id)",
    )


def scheduled_event(*, deletes: bool, now: datetime) -> dict[str, Any]:
    """The event the reconcile schedule sends (EventBridge), ``detail.deletes`` asking for the deletes sweep."""
    return {
        "version": "0",
        "id": f"nrtsync-cli-{now:%Y%m%dT%H%M%S}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": {"deletes": deletes},
    }


def run_reconcile_command(
    args: argparse.Namespace,
    out: TextIO,
    *,
    target: BackfillTarget | None = None,
    zuora: ZuoraPort | None = None,
) -> int:
    """Returns the exit code: 0 done, 1 a pass that reported errors, 3 the stack could not be reached."""
    try:
        if args.stack:
            return _invoke(args, out)
        resolved = target or BackfillTarget.of_local(args.state_file or LOCAL_STACK_FILE)
        result = _run_locally(args, resolved, zuora)
    except (BackfillCommandError, ZuoraError, ClientError, BotoCoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    _print(args, out, result.as_dict())
    return 1 if result.errors or result.deletes_error else 0


def _run_locally(args: argparse.Namespace, target: BackfillTarget, zuora: ZuoraPort | None) -> ReconcileResult:
    dynamodb, sqs = target.client("dynamodb"), target.client("sqs")
    settings = ReconcileSettings.model_validate(
        {"CALLOUT_QUEUE_URL": target.queue_url, "SYNC_STATE_TABLE": target.state_table, "ZUORA_SECRET_ID": "-"}
    )
    state = DynamoVersionStore(target.state_table, client=dynamodb)
    reconciler = build_reconcile(
        settings,
        zuora=zuora or local_zuora(target, args.zuora_secret_id),
        mapping=load_mapping(),
        versions=state,
        sink=SqsChangeQueue(target.queue_url, client=sqs),
        checkpoints=DynamoSweepCheckpoints(target.state_table, client=dynamodb),
        breaker_store=DynamoBreakerStore(target.state_table, client=dynamodb),
        written=state,
    )
    return reconciler.run(deadline=time.monotonic() + LOCAL_RUN_SECONDS, deletes=args.deletes)


def _invoke(args: argparse.Namespace, out: TextIO) -> int:
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    stacks = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    function = outputs.get("ReconcileFunctionName")
    if function is None:
        raise BackfillCommandError(f"stack {args.stack} has no output ReconcileFunctionName")
    event = scheduled_event(deletes=args.deletes, now=datetime.now(UTC))
    answer = session.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    payload = json.loads(answer["Payload"].read() or b"null")
    _print(args, out, payload)
    return 1 if answer.get("FunctionError") else 0


def _print(args: argparse.Namespace, out: TextIO, data: Any) -> None:
    if args.json or not isinstance(data, dict):
        print(json.dumps(data, default=str), file=out)
        return
    for key, value in data.items():
        print(f"{key}: {value}", file=out)
