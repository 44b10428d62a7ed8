"""Mapping overrides tests switch to, made from the shipped default so that they follow its changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nrtsync.domain.mapping import DEFAULT_MAPPING_PATH, MappingConfig

VERSION_EXTERNAL_ID = "Zuora__External_Id__c"


def per_version_subscriptions_json() -> dict[str, Any]:
    """The default mapping switched as docs/CALLOUTS.md ("Subscription versions") tells a deployer: a record per
    subscription version, upserted on the version's Zuora Id, the superseded version's record deleted."""
    mapping: dict[str, Any] = json.loads(DEFAULT_MAPPING_PATH.read_text(encoding="utf-8"))
    subscription = mapping["objects"]["Subscription"]
    subscription["externalIdField"] = VERSION_EXTERNAL_ID
    subscription["versions"]["superseded"] = "delete"
    return mapping


def per_version_subscriptions() -> MappingConfig:
    return MappingConfig.model_validate(per_version_subscriptions_json())


def write_mapping(mapping: dict[str, Any], directory: Path) -> Path:
    """A mapping file a deployment would point ``SYNC_MAPPING_PATH`` at."""
    path = directory / "mapping.json"
    path.write_text(json.dumps(mapping), encoding="utf-8")
    return path
