"""``LocalDeployment`` with Zuora: the stand-in started beside the Salesforce one, the ``ZuoraSecret`` in moto
resolved by a function's ``!Ref ZuoraSecret``, and a function-like reader (secret from Secrets Manager, the
product's client over HTTPS, trusting only what the stack's environment trusts) reading seeded records."""

from __future__ import annotations

import copy
import itertools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from nrtsync.app.shared import build_zuora
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.zuora import ZuoraCredentials
from nrtsync_local.stack import SYNC, LocalDeployment, ZuoraTenant
from nrtsync_local.stack.state_file import STATE_FILE_NAME
from nrtsync_local.template import load_template
from tests.support.zuora import query_changes

pytestmark = pytest.mark.integration

SINCE = datetime(2026, 11, 30, tzinfo=UTC)
_stacks = itertools.count()


def template_reading_zuora() -> dict[str, Any]:
    """template.yaml with the sync function's environment naming the Zuora secret, as the reconcile function's
    will (``!Ref ZuoraSecret``)."""
    template = copy.deepcopy(load_template())
    variables = template["Resources"][SYNC]["Properties"].setdefault("Environment", {}).setdefault("Variables", {})
    variables["ZUORA_SECRET_ARN"] = {"Ref": "ZuoraSecret"}
    return template


def stack_name() -> str:
    return f"zlocal{os.getpid()}x{next(_stacks)}"  # moto's state is per process: one name per stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalDeployment]:
    # One stack per test: a process runs one stack at a time, and the tenant test below needs its own.
    state_file = tmp_path / STATE_FILE_NAME
    deployment = LocalDeployment(
        stack_name=stack_name(), with_metrics=False, template=template_reading_zuora(), state_file=state_file
    )
    with deployment:
        yield deployment


def read_secret_as_a_function_does() -> ZuoraCredentials:
    """What a function does in Lambda: its environment's secret ARN, Secrets Manager at the ambient endpoint."""
    secrets = boto3.client("secretsmanager")
    value = secrets.get_secret_value(SecretId=os.environ["ZUORA_SECRET_ARN"])["SecretString"]
    return ZuoraCredentials.model_validate_json(value)


def test_a_function_reads_records_seeded_in_the_zuora_stand_in_over_https(stack: LocalDeployment) -> None:
    # Given accounts seeded in the running stack's Zuora stand-in
    assert stack.zuora is not None
    stack.zuora.seed(
        "Account",
        [
            {"Id": f"Z{n}", "UpdatedDate": (SINCE + timedelta(minutes=n)).isoformat(), "Name": f"Zuora {n}"}
            for n in range(1, 4)
        ],
    )

    # When a function-like reader takes the secret its environment names and queries with the product's client
    # (a plain requests session: it trusts the stack's REQUESTS_CA_BUNDLE, as the real function's would)
    credentials = read_secret_as_a_function_does()
    zuora = build_zuora(credentials)
    pages = list(query_changes(zuora, load_mapping(), "Account", SINCE, SINCE + timedelta(days=1)))

    # Then it reached the stand-in with the stand-in's own credentials and read every record
    assert credentials.base == stack.zuora_url == stack.zuora.url
    assert credentials.client_id == stack.zuora.client_id
    assert sorted(change.record_id for page in pages for change in page) == ["Z1", "Z2", "Z3"]
    assert stack.zuora.stats()["counts"]["query"] >= 1


def test_the_salesforce_stand_in_stays_trusted_beside_the_zuora_one(stack: LocalDeployment) -> None:
    # One REQUESTS_CA_BUNDLE for both stand-ins: a session that trusts the environment reaches each over HTTPS.
    with requests.Session() as session:
        for url in (stack.salesforce_url, stack.zuora_url):
            answer = session.get(f"{url}/__standin/stats", timeout=5)
            assert answer.status_code == 200, url


def test_stack_json_and_info_name_zuora(stack: LocalDeployment) -> None:
    assert stack.state_file is not None
    written = json.loads(stack.state_file.read_text())
    assert stack.zuora is not None
    for document in (stack.info(), written):
        assert document["zuora"] == "standin"
        assert document["zuora_url"] == stack.zuora.url
        assert document["zuora_ca_file"] == stack.zuora.ca_file
        assert document["zuora_standin_pid"] == stack.zuora.pid
        assert document["zuora_secret_id"] == os.environ["ZUORA_SECRET_ARN"]


def test_a_real_tenant_starts_no_stand_in_and_its_credentials_fill_the_secret(tmp_path: Path) -> None:
    tenant = ZuoraTenant.from_environ(
        {
            "ZUORA_BASE_URL": "https://rest.apisandbox.zuora.com",
            "ZUORA_CLIENT_ID": "tenant-client",
            "ZUORA_CLIENT_SECRET": "tenant-secret",
        }
    )
    with LocalDeployment(
        stack_name=stack_name(), with_metrics=False, template=template_reading_zuora(), zuora_tenant=tenant
    ) as deployment:
        credentials = read_secret_as_a_function_does()
        info = deployment.info()
        bundle = Path(os.environ["REQUESTS_CA_BUNDLE"]).read_text()
        assert deployment.standin is not None
        salesforce_ca = Path(deployment.standin.ca_file).read_text()

    assert deployment.zuora is None
    assert deployment.zuora_url == "https://rest.apisandbox.zuora.com"
    assert (credentials.base, credentials.client_id, credentials.client_secret) == (
        "https://rest.apisandbox.zuora.com",
        "tenant-client",
        "tenant-secret",
    )
    assert (info["zuora"], info["zuora_url"], info["zuora_standin_pid"]) == (
        "tenant",
        "https://rest.apisandbox.zuora.com",
        None,
    )
    assert salesforce_ca in bundle  # the Salesforce stand-in stays trusted, and so do public roots (unit test)


def test_stopping_the_stack_stops_the_zuora_stand_in_by_its_pid() -> None:
    deployment = LocalDeployment(stack_name=stack_name(), with_metrics=False).start()
    try:
        assert deployment.zuora is not None
        pid = deployment.zuora.pid
        os.kill(pid, 0)  # running
    finally:
        deployment.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
