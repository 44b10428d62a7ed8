"""``nrtsync zuora setup`` and ``nrtsync zuora check``: Zuora's event triggers and notification definitions for a
stack, from its mapping, its ``CalloutUrl`` and its callout secret (``nrtsync.services.zuora_setup``).

Exit codes: 0 done (``check``: no drift), 1 drift found or Zuora cannot be set up as asked (the message says what
to do), 3 the stack or Zuora could not be reached.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync_cli.local_state import LOCAL_STACK_FILE, LocalStateError, read_local_state
from nrtsync_cli.render import print_table
from nrtsync_cli.stack_outputs import StackReadError, read_stack_outputs

ZUORA_COMMAND = "zuora"
LOCAL_STACK_NAME = "local"
"""What the local stack is called in Zuora's names (``nrtsync-local-Account-update``...)."""


class TargetError(RuntimeError):
    """The stack, its outputs or its secrets could not be read: exit 3 with the message."""


@dataclass(frozen=True)
class StackSide:
    """What a stack tells ``zuora setup``: its name, callout URL and the two secrets' JSON."""

    stack: str
    callout_url: str | None
    callout_secret: dict[str, Any]
    zuora_secret: dict[str, Any]
    ca_file: str | None = None
    """A CA to trust for Zuora (the local stand-in's); None: the system's."""


def add_zuora_command(add_command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    sub = add_command(ZUORA_COMMAND, "set up Zuora's event triggers and callouts for the stack, or check them")
    sub.add_argument("action", choices=["setup", "check"], help="setup: create or update; check: report drift")
    sub.add_argument("--dry-run", action="store_true", help="with setup: print what would change; change nothing")
    sub.add_argument("--mapping", type=Path, help="the mapping file the stack uses (default: the shipped mapping)")


def local_side(state_file: Path) -> StackSide:
    try:
        local = read_local_state(state_file, "callout_url", "callout_secret_id", "zuora_secret_id")
    except LocalStateError as exc:
        raise TargetError(str(exc)) from exc
    secrets = local.client("secretsmanager")
    values = local.values
    return StackSide(
        stack=LOCAL_STACK_NAME,
        callout_url=str(values["callout_url"]),
        callout_secret=secret_json(secrets, str(values["callout_secret_id"])),
        zuora_secret=secret_json(secrets, str(values["zuora_secret_id"])),
        ca_file=values.get("zuora_ca_file"),
    )


def stack_side(stack: str, *, region: str | None, profile: str | None) -> StackSide:
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        outputs = read_stack_outputs(session.client("cloudformation"), stack)
        secrets = session.client("secretsmanager")
        return StackSide(
            stack=stack,
            callout_url=outputs.get("CalloutUrl"),
            callout_secret=secret_json(secrets, outputs["CalloutSecretArn"]),
            zuora_secret=secret_json(secrets, outputs["ZuoraSecretArn"]),
        )
    except StackReadError as exc:
        raise TargetError(str(exc)) from exc
    except (ClientError, BotoCoreError) as exc:
        raise TargetError(f"cannot read stack {stack}: {exc}") from exc


def secret_json(secrets: Any, secret_id: str) -> dict[str, Any]:
    try:
        value = json.loads(secrets.get_secret_value(SecretId=secret_id)["SecretString"])
    except (ClientError, BotoCoreError, ValueError, KeyError) as exc:
        raise TargetError(f"cannot read the secret {secret_id}: {exc}") from exc
    if not isinstance(value, dict):
        raise TargetError(f"the secret {secret_id} is not a JSON object")
    return value


def run_zuora(args: argparse.Namespace, out: TextIO, side: StackSide, err: TextIO) -> int:
    """One ``zuora`` command against ``side``; imports the layer on use (the CLI starts without it)."""
    from nrtsync.adapters.zuora_setup import ZuoraSetupClient  # noqa: PLC0415
    from nrtsync.domain.mapping import MappingError, load_mapping  # noqa: PLC0415
    from nrtsync.domain.models.zuora import ZuoraError, ZuoraRequestError  # noqa: PLC0415
    from nrtsync.domain.zuora_notifications import SetupError  # noqa: PLC0415
    from nrtsync.services.zuora_setup.service import (  # noqa: PLC0415
        TENANT_SETTINGS,
        ZuoraSetup,
        require_target,
        require_zuora_credentials,
    )

    try:
        mapping = load_mapping(args.mapping)
        target = require_target(side.stack, side.callout_url, side.callout_secret)
        credentials = require_zuora_credentials(side.zuora_secret)
        session = requests.Session()
        if side.ca_file:
            session.verify = side.ca_file
            session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        setup = ZuoraSetup(ZuoraSetupClient(credentials, session=session), mapping, target)
        if args.action == "check":
            return _check(setup.check(), args, out)
        steps = setup.plan() if args.dry_run else setup.apply()
    except (SetupError, MappingError) as exc:
        print(f"error: {exc}", file=err)
        return 1
    except ZuoraRequestError as exc:
        print(f"error: Zuora refused a set-up call: {exc}", file=err)
        return 1
    except ZuoraError as exc:
        print(f"error: Zuora could not be reached or refused the OAuth client: {exc}", file=err)
        return 3
    changes = [step for step in steps if step.action != "unchanged"]
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "changes": [s.line() for s in changes]}, indent=2), file=out)
        return 0
    verb = "would" if args.dry_run else "did"
    for step in changes:
        print(f"{verb} {step.line()}", file=out)
    if not changes:
        print(f"nothing to change: {len(steps) // 2} event triggers and notification definitions in step", file=out)
    print("callout settings the endpoint relies on:", file=out)
    for name, where in TENANT_SETTINGS:
        print(f"  {name}: {where}", file=out)
    return 0


def _check(drifts: list[Any], args: argparse.Namespace, out: TextIO) -> int:
    rows = [{"name": d.name, "problem": d.problem, "fix": d.fix} for d in drifts]
    if args.json:
        print(json.dumps(rows, indent=2), file=out)
    elif rows:
        print_table(rows, [("name", "definition"), ("problem", "drift"), ("fix", "what to do")], out)
    else:
        print("no drift: Zuora calls this stack as the mapping says", file=out)
    return 1 if rows else 0


def setup_zuora(side: StackSide, *, mapping: str | None = None) -> str | None:
    """``zuora setup`` for a stack started in this process (the local stack); None when done, else the error."""
    args = argparse.Namespace(action="setup", dry_run=False, json=True, mapping=Path(mapping) if mapping else None)
    out, err = io.StringIO(), io.StringIO()
    return None if run_zuora(args, out, side, err) == 0 else err.getvalue().strip()


def resolve_side(args: argparse.Namespace) -> StackSide:
    if args.stack:
        return stack_side(args.stack, region=args.region, profile=args.profile)
    return local_side(args.state_file or LOCAL_STACK_FILE)
