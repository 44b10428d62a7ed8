"""``nrtsync check``: a preflight against the user's own org and tenant (``nrtsync.services.preflight``), plus the
stack's secrets, both sides' tokens, the org's API headroom and the alarm topic's subscriptions.

One line per problem with what to do; ``--json`` for a list. Exit 0 only when nothing blocks syncing (warnings
do not), 1 when something does, 3 when the stack could not be read.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync_cli.local_state import LocalStateError, read_local_state
from nrtsync_cli.render import print_table
from nrtsync_cli.stack_outputs import StackReadError, read_stack_outputs
from nrtsync_cli.zuora_setup import TargetError, secret_json

CHECK_COMMAND = "check"
PLACEHOLDER = "REPLACE_ME"
API_USAGE_WARN_PERCENT = 90.0
"""The product's promise: a warning when the org's API usage reaches 90% of its limit."""


@dataclass
class CheckSources:
    """What ``check`` reads: the stack's three secrets' JSON, sessions for each side, the alarm topic."""

    secrets: dict[str, dict[str, Any]]
    salesforce_session: requests.Session = field(default_factory=requests.Session)
    zuora_session: requests.Session = field(default_factory=requests.Session)
    alarm_subscriptions: Callable[[], list[str]] | None = None
    """The alarm topic's confirmed subscriptions (endpoints); None: the stack has no alarm topic to check."""


def add_check_command(add_command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    sub = add_command(CHECK_COMMAND, "preflight: the mapping against your org's and tenant's describe, secrets, tokens")
    sub.add_argument("--mapping", type=Path, help="the mapping file the stack uses (default: the shipped mapping)")


def local_sources(state_file: Path) -> CheckSources:
    try:
        local = read_local_state(state_file, "salesforce_secret_id", "zuora_secret_id", "callout_secret_id")
    except LocalStateError as exc:
        raise TargetError(str(exc)) from exc
    client, values = local.client("secretsmanager"), local.values
    names = {"salesforce": "salesforce_secret_id", "zuora": "zuora_secret_id", "callout": "callout_secret_id"}
    return CheckSources(
        secrets={side: secret_json(client, str(values[key])) for side, key in names.items()},
        salesforce_session=_trusting(values.get("salesforce_ca_file")),
        zuora_session=_trusting(values.get("zuora_ca_file")),
    )


def stack_sources(stack: str, *, region: str | None, profile: str | None) -> CheckSources:
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        outputs = read_stack_outputs(session.client("cloudformation"), stack)
        client = session.client("secretsmanager")
        names = {"salesforce": "SalesforceSecretArn", "zuora": "ZuoraSecretArn", "callout": "CalloutSecretArn"}
        secrets = {side: secret_json(client, outputs[key]) for side, key in names.items()}
    except StackReadError as exc:
        raise TargetError(str(exc)) from exc
    except (ClientError, BotoCoreError) as exc:
        raise TargetError(f"cannot read stack {stack}: {exc}") from exc
    topic = outputs.get("AlarmEmailTopicArn")
    sns = session.client("sns")

    def subscriptions() -> list[str]:
        answer = sns.list_subscriptions_by_topic(TopicArn=topic)
        return [
            str(s.get("Endpoint"))
            for s in answer.get("Subscriptions", [])
            if str(s.get("SubscriptionArn", "")).startswith("arn:")  # not "PendingConfirmation"
        ]

    return CheckSources(secrets=secrets, alarm_subscriptions=subscriptions if topic else None)


def _trusting(ca_file: str | None) -> requests.Session:
    session = requests.Session()
    if ca_file:
        session.verify = ca_file
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    return session


def run_check(args: argparse.Namespace, out: TextIO, sources: CheckSources) -> int:
    """Every finding, printed; 1 when one blocks syncing."""
    from nrtsync.domain.mapping import MappingError, load_mapping  # noqa: PLC0415 - the layer, imported on use
    from nrtsync.services.preflight.service import Finding, blocking  # noqa: PLC0415

    try:
        mapping = load_mapping(args.mapping)
    except MappingError as exc:
        findings = [Finding("block", "mapping", str(exc), "fix the mapping file")]
    else:
        findings = _placeholders(sources.secrets)
        # A side whose secret holds placeholders is not asked for a token: the placeholder is the finding.
        unset = {f.what.removesuffix(" secret") for f in findings}
        findings += [] if "salesforce" in unset else _salesforce(mapping, sources)
        findings += [] if "zuora" in unset else _zuora(mapping, sources)
        findings += _alarms(sources)
    rows = [{"severity": f.severity, "what": f.what, "problem": f.problem, "fix": f.fix} for f in findings]
    if args.json:
        print(json.dumps(rows, indent=2), file=out)
    else:
        print_table(rows, [("severity", "severity"), ("what", "what"), ("problem", "problem"), ("fix", "fix")], out)
        blocked = sum(f.severity == "block" for f in findings)
        print(f"{blocked} blocking, {sum(f.severity == 'warn' for f in findings)} warnings", file=out)
    return 1 if blocking(findings) else 0


def _placeholders(secrets: dict[str, dict[str, Any]]) -> list[Any]:
    from nrtsync.services.preflight.service import Finding  # noqa: PLC0415

    return [
        Finding(
            "block",
            f"{side} secret",
            f"{key} still holds its placeholder",
            "put the real value in the secret (docs/DEPLOY.md, the secrets step)",
        )
        for side, secret in secrets.items()
        for key, value in secret.items()
        if PLACEHOLDER in str(value)
    ]


def _salesforce(mapping: Any, sources: CheckSources) -> list[Any]:
    from nrtsync.adapters.salesforce_describe import SalesforceDescribeClient  # noqa: PLC0415
    from nrtsync.domain.models.salesforce import SalesforceCredentials, SalesforceError  # noqa: PLC0415
    from nrtsync.services.preflight.service import Finding, check_salesforce  # noqa: PLC0415

    try:
        credentials = SalesforceCredentials.model_validate(sources.secrets["salesforce"])
    except ValueError as exc:
        return [Finding("block", "salesforce secret", f"not valid: {exc}", "fix the secret (docs/SALESFORCE.md)")]
    client = SalesforceDescribeClient(lambda: credentials, session=sources.salesforce_session, max_attempts=2)
    try:
        usage = client.fetch_api_usage(deadline=time.monotonic() + 30)
        findings = check_salesforce(mapping, client)
    except SalesforceError as exc:
        return [
            Finding(
                "block",
                "salesforce token",
                f"no token or no answer: {exc}",
                "check the connected app, the user and the secret's login_url (docs/SALESFORCE.md)",
            )
        ]
    if usage.percent >= API_USAGE_WARN_PERCENT:
        findings.append(
            Finding(
                "warn",
                "salesforce api usage",
                f"{usage.percent:.0f}% of the daily allocation used ({usage.used} of {usage.limit})",
                "wait for the rolling 24 h to free calls, or raise the limit",
            )
        )
    return findings


def _zuora(mapping: Any, sources: CheckSources) -> list[Any]:
    from nrtsync.adapters.zuora_setup import ZuoraSetupClient  # noqa: PLC0415
    from nrtsync.domain.models.zuora import ZuoraCredentials, ZuoraError  # noqa: PLC0415
    from nrtsync.services.preflight.service import Finding, check_zuora  # noqa: PLC0415

    try:
        credentials = ZuoraCredentials.model_validate(sources.secrets["zuora"])
    except ValueError as exc:
        return [Finding("block", "zuora secret", f"not valid: {exc}", "fix the secret (docs/ZUORA.md)")]
    try:
        return check_zuora(mapping, ZuoraSetupClient(credentials, session=sources.zuora_session, deadline_seconds=20))
    except ZuoraError as exc:
        return [
            Finding(
                "block",
                "zuora token",
                f"no token or no answer: {exc}",
                "check the OAuth client and the secret's base_url (docs/ZUORA.md)",
            )
        ]


def _alarms(sources: CheckSources) -> list[Any]:
    from nrtsync.services.preflight.service import Finding  # noqa: PLC0415

    if sources.alarm_subscriptions is None:
        return []
    try:
        confirmed = sources.alarm_subscriptions()
    except (ClientError, BotoCoreError) as exc:
        return [Finding("warn", "alarm topic", f"cannot read its subscriptions: {exc}", "check SNS permissions")]
    if confirmed:
        return []
    return [
        Finding(
            "warn",
            "alarm topic",
            "no confirmed subscription: alarms reach nobody",
            "deploy with AlarmEmail set "
            "and confirm the e-mail AWS sends, or subscribe your paging tool to AlarmEmailTopicArn",
        )
    ]


def resolve_sources(args: argparse.Namespace, default_state_file: Path) -> CheckSources:
    if args.stack:
        return stack_sources(args.stack, region=args.region, profile=args.profile)
    return local_sources(args.state_file or default_state_file)
