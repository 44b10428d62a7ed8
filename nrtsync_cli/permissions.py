"""``nrtsync salesforce permissions``: the permission set the integration user needs, as Metadata API XML to
deploy (``nrtsync.domain.permissions``). Offline from the mapping; with ``--local`` or ``--stack`` the org's
describe says which fields are required, and those are left out (Salesforce refuses field permissions on them).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

SALESFORCE_COMMAND = "salesforce"


def add_salesforce_command(add_command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    sub = add_command(SALESFORCE_COMMAND, "Salesforce set-up: the permission set the integration user needs")
    sub.add_argument("action", choices=["permissions"], help="print the permission set (metadata XML to deploy)")
    sub.add_argument("--mapping", type=Path, help="the mapping file the stack uses (default: the shipped mapping)")
    sub.add_argument("--label", default="nrtsync integration", help="the permission set's label")


def run_permissions(args: argparse.Namespace, out: TextIO, *, required: set[str] | None = None) -> int:
    from nrtsync.domain.mapping import MappingError, load_mapping  # noqa: PLC0415 - the layer, imported on use
    from nrtsync.domain.permissions import permission_set_xml  # noqa: PLC0415

    try:
        mapping = load_mapping(args.mapping)
    except MappingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out.write(permission_set_xml(mapping, label=args.label, required=required or set()))
    if required is None:
        print(
            "note: without --local or --stack the org's required fields are not known; if the deployment refuses a "
            "field permission on a required (master-detail) field, delete that entry",
            file=sys.stderr,
        )
    return 0


def required_fields(args: argparse.Namespace, default_state_file: Path) -> set[str]:
    """``SObject.Field`` of every required field of the mapped sObjects, from the org's describe."""
    from nrtsync.adapters.salesforce_describe import SalesforceDescribeClient  # noqa: PLC0415
    from nrtsync.domain.mapping import load_mapping  # noqa: PLC0415
    from nrtsync.domain.models.salesforce import SalesforceCredentials  # noqa: PLC0415
    from nrtsync_cli.check import resolve_sources  # noqa: PLC0415

    sources = resolve_sources(args, default_state_file)
    credentials = SalesforceCredentials.model_validate(sources.secrets["salesforce"])
    client = SalesforceDescribeClient(lambda: credentials, session=sources.salesforce_session, max_attempts=2)
    client.fetch_api_usage(deadline=time.monotonic() + 30)  # fails early and clearly on a bad token
    found = set()
    for sobject in {obj.sobject for obj in load_mapping(args.mapping).objects.values()}:
        for field in client.describe(sobject) or []:
            if not field.nillable and not field.defaulted_on_create and field.createable:
                found.add(f"{sobject}.{field.name}")
    return found
