"""What each handler loads on a cold start: its module import, then the build of its service on first use.

Every probe runs in a fresh interpreter (``sys.modules`` of this test process says nothing about a cold start)
with the function's directory and the layer first on ``sys.path``, as Lambda imports ``app``. Timings are the
benchmark's job (``python -m bench.run --only cold``); this test guards which packages load, which is what the
timings come from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared"
FUNCTIONS = ("authorizer", "ingest", "sync", "metrics", "reconcile", "backfill")
NOT_SALESFORCE = ("authorizer", "ingest", "metrics", "reconcile", "backfill")

# Dummy values for every setting the four functions read; nothing here reaches AWS (building a service creates
# boto3 clients but makes no call).
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "nrtsync-test",
    "POWERTOOLS_METRICS_NAMESPACE": "NrtSyncTest",
    "CALLOUT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/000000000000/callouts",
    "CALLOUT_SECRET_ID": "callout-secret",
    "SALESFORCE_SECRET_ID": "salesforce-secret",
    "ZUORA_SECRET_ID": "zuora-secret",
    "SYNC_STATE_TABLE": "sync-state",
    "SYNC_HISTORY_TABLE": "sync-history",
    "PATH": os.defpath,
    "LANG": "C.UTF-8",
}

# The handler's module import, then its one ``Lazy`` holder's build (what the first invocation does before
# any I/O). Module names are reported per stage.
PROBE = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
from nrtsync.app.shared import Lazy
imported = sorted(sys.modules)
[holder] = [value for value in vars(app).values() if isinstance(value, Lazy)]
holder.get()
print(json.dumps({"imported": imported, "built": sorted(sys.modules)}))
"""


@cache
def _loaded(function: str) -> dict[str, frozenset[str]]:
    completed = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(ROOT / "functions" / function), str(LAYER)],
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=str(ROOT),
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return {stage: frozenset(names) for stage, names in result.items()}


def _packages(modules: frozenset[str], *names: str) -> list[str]:
    """Which of ``names`` (packages or modules) are loaded, a package counting when any of its modules is."""
    return sorted(name for name in names if any(m == name or m.startswith(name + ".") for m in modules))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_loads_the_xray_sdk(function: str) -> None:
    # Given a handler imported and its service built in a fresh interpreter
    loaded = _loaded(function)
    # Then the X-Ray SDK (maintenance mode, ~200 ms of import) and wrapt, which only it needed, never load:
    # Lambda's active tracing needs no SDK in the function
    assert _packages(loaded["built"], "aws_xray_sdk", "wrapt") == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_module_import_leaves_adapter_dependencies_to_the_first_invocation(function: str) -> None:
    # Given a handler module imported in a fresh interpreter
    imported = _loaded(function)["imported"]
    # Then boto3 (and s3transfer), simple-salesforce's stack and cryptography are not loaded yet: the wiring
    # builders, tables' item conversion and the JWT key check import them where they are used
    heavy = ("boto3", "s3transfer", "simple_salesforce", "zeep", "lxml", "requests", "cryptography", "jwt")
    assert _packages(imported, *heavy) == []
    assert _packages(imported, "nrtsync.adapters") == []


@pytest.mark.parametrize("function", NOT_SALESFORCE)
def test_functions_that_never_call_salesforce_never_load_its_client(function: str) -> None:
    # Given a function that does not talk to Salesforce, imported and its service built
    built = _loaded(function)["built"]
    # Then neither simple-salesforce (with zeep and lxml) nor our Salesforce adapter and models were loaded
    salesforce = (
        "simple_salesforce",
        "zeep",
        "lxml",
        "nrtsync.adapters.salesforce",
        "nrtsync.domain.models.salesforce",
    )
    assert _packages(built, *salesforce) == []
    # nor cryptography, which only a JWT bearer Salesforce secret needs
    assert _packages(built, "cryptography", "jwt") == []


def test_the_sync_function_loads_simple_salesforce_when_its_service_is_built() -> None:
    # Given the sync handler imported, then its service built (the probe sees imports made after the import)
    loaded = _loaded("sync")
    # Then simple-salesforce arrives with the build, not with the module import
    assert _packages(loaded["imported"], "simple_salesforce") == []
    assert _packages(loaded["built"], "simple_salesforce", "nrtsync.adapters.salesforce") == [
        "nrtsync.adapters.salesforce",
        "simple_salesforce",
    ]


def test_the_metrics_function_loads_no_callout_or_salesforce_model() -> None:
    # Given the metrics handler imported and its service built (it reads ApiUsage from nrtsync.ports.sync)
    built = _loaded("metrics")["built"]
    # Then the models the sync contracts name only in annotations stay unloaded
    assert _packages(built, "nrtsync.models") == []


def test_the_reconcile_function_reads_its_zuora_secret_and_loads_the_zuora_client_only_when_it_queries() -> None:
    # Given the reconcile handler imported and its service built
    built = _loaded("reconcile")["built"]
    # Then the Zuora client (and requests under it) waits for the first query: the build reads no secret
    assert _packages(built, "nrtsync.adapters.zuora", "requests") == []
