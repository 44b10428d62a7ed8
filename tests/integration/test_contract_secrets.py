"""One contract, two implementations: the in-memory secret source and CachedSecretSource on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from nrtsync.adapters.aws.secrets import CachedSecretSource
from nrtsync.ports.secrets import SecretSource, SecretUnavailableError
from nrtsync_fakes.secrets import MemorySecrets

SECRET = {"username": "zuora-callout", "password": "local-test-only-password"}


@pytest.fixture(params=["fake", "moto"])
def secrets(request: pytest.FixtureRequest) -> Iterator[SecretSource]:
    if request.param == "fake":
        yield MemorySecrets({"callout": SECRET})
        return
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        client.create_secret(Name="callout", SecretString=json.dumps(SECRET))
        yield CachedSecretSource(max_age=300, client=client)


def test_a_secret_is_read_as_its_json_object(secrets: SecretSource) -> None:
    assert secrets.get_json("callout") == SECRET


def test_a_secret_that_does_not_exist_is_unavailable(secrets: SecretSource) -> None:
    with pytest.raises(SecretUnavailableError):
        secrets.get_json("missing")
