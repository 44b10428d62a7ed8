"""Integration tier: the real adapters on moto (in-process ``mock_aws`` or moto's HTTP server) and the stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from nrtsync_local.moto_atomic import make_dynamodb_writes_atomic
from tests.support.sync_world import SyncWorld, create_tables


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    """moto's DynamoDB in process, with the state and history tables as template.yaml declares them."""
    # DynamoDB applies a conditional write atomically; moto does not unless patched, and the sync's leases rely on it.
    make_dynamodb_writes_atomic()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_tables(client)
        yield client


@pytest.fixture
def world(dynamodb: Any) -> SyncWorld:
    """A sync service on moto's DynamoDB and the in-memory Salesforce."""
    return SyncWorld(dynamodb=dynamodb)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's HTTP server on a free port of 127.0.0.1, one per test module; its URL."""
    make_dynamodb_writes_atomic()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
