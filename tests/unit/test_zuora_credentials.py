"""The Zuora secret's shape: a tenant's https REST endpoint and an OAuth client."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nrtsync.adapters.zuora import ZuoraClient
from nrtsync.app.shared import build_zuora_from_secret
from nrtsync.domain.models.zuora import ZuoraCredentials
from nrtsync.ports.secrets import SecretInvalidError
from nrtsync.services.sweep.settings import SweepSettings
from nrtsync_fakes.secrets import MemorySecrets


@pytest.mark.parametrize(
    "base_url", ["https://rest.zuora.com", "https://rest.eu.zuora.com/", "https://rest.apisandbox.zuora.com"]
)
def test_a_tenant_base_url_of_any_data_centre_is_accepted_without_its_trailing_slash(base_url: str) -> None:
    credentials = ZuoraCredentials.model_validate({"base_url": base_url, "client_id": "id", "client_secret": "s3"})

    assert credentials.base == base_url.rstrip("/")


@pytest.mark.parametrize(
    ("secret", "field", "message"),
    [
        ({"base_url": "http://rest.zuora.com", "client_id": "i", "client_secret": "s"}, "base_url", "https"),
        ({"base_url": "https://rest.zuora.com/v1", "client_id": "i", "client_secret": "s"}, "base_url", "path"),
        ({"base_url": "not a url", "client_id": "i", "client_secret": "s"}, "base_url", "URL"),
        ({"base_url": "https://rest.zuora.com", "client_id": "", "client_secret": "s"}, "client_id", "at least 1"),
        ({"base_url": "https://rest.zuora.com", "client_id": "i"}, "client_secret", "required"),
    ],
)
def test_a_bad_secret_is_refused_with_an_error_naming_the_field(
    secret: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        ZuoraCredentials.model_validate(secret)

    errors = raised.value.errors()
    assert [e["loc"][0] for e in errors] == [field]
    assert message in str(raised.value)


def test_the_client_secret_never_shows_in_repr() -> None:
    credentials = ZuoraCredentials(base_url="https://rest.zuora.com", client_id="id", client_secret="hunter2")

    assert "hunter2" not in repr(credentials)
    assert "hunter2" not in str(credentials)


def test_a_sweep_reads_zuora_credentials_from_its_secret_and_a_bad_secret_names_its_keys_not_its_values() -> None:
    settings = SweepSettings.from_env(
        {"CALLOUT_QUEUE_URL": "q", "SYNC_STATE_TABLE": "state", "ZUORA_SECRET_ID": "arn:zuora"}
    )
    good = {"base_url": "https://rest.eu.zuora.com", "client_id": "id", "client_secret": "s3cr3t-value"}
    assert isinstance(build_zuora_from_secret(settings, secrets=MemorySecrets(default=good)), ZuoraClient)

    with pytest.raises(SecretInvalidError) as refused:
        build_zuora_from_secret(settings, secrets=MemorySecrets(default=good | {"base_url": "http://rest.zuora.com"}))
    assert "arn:zuora" in str(refused.value)
    assert "base_url" in str(refused.value)
    assert "s3cr3t-value" not in str(refused.value)
