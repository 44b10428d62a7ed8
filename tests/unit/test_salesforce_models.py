"""Salesforce credentials, results and usage models (no network)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from nrtsync.domain.models.salesforce import (
    RecordError,
    RecordResult,
    SalesforceCredentials,
    SalesforceLimitExceededError,
    SalesforceRequestError,
    SalesforceRetryableError,
)
from nrtsync.ports.salesforce import ApiUsage


@cache
def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_client_credentials_secret_parses_with_defaults():
    # Given the secret JSON of the client credentials flow, with an unrelated extra key
    secret = {"login_url": "https://acme.my.salesforce.com", "client_id": "3MVG9abc", "client_secret": "s3cr3t", "x": 1}

    # When it is parsed
    creds = SalesforceCredentials.model_validate(secret)

    # Then the flow defaults to client credentials and the token URL is the org's own
    assert creds.auth_flow == "client_credentials"
    assert creds.token_url == "https://acme.my.salesforce.com/services/oauth2/token"
    assert creds.login_base_url == "https://acme.my.salesforce.com"


def test_secrets_stay_out_of_repr_and_str():
    # Given credentials with a client secret
    creds = SalesforceCredentials(login_url="https://login.salesforce.com", client_id="id", client_secret="s3cr3t")

    # When they are turned into text (as a log line would)
    text = f"{creds!r} {creds}"

    # Then the secret is not in it
    assert "s3cr3t" not in text
    assert "client_id='id'" in text


def test_client_credentials_without_secret_is_refused():
    # Given a client credentials secret with no client_secret
    secret = {"login_url": "https://login.salesforce.com", "client_id": "id"}

    # When / Then parsing fails naming what is missing
    with pytest.raises(ValidationError, match="client_secret"):
        SalesforceCredentials.model_validate(secret)


def test_jwt_bearer_needs_username_and_private_key():
    # Given a JWT bearer secret with neither username nor key
    secret = {"auth_flow": "jwt_bearer", "login_url": "https://test.salesforce.com", "client_id": "id"}

    # When / Then parsing fails naming both
    with pytest.raises(ValidationError, match="username, private_key"):
        SalesforceCredentials.model_validate(secret)


def test_jwt_bearer_accepts_a_pem_with_escaped_newlines():
    # Given a PEM pasted into JSON with literal \n sequences
    escaped = rsa_pem().replace("\n", "\\n")

    # When the secret is parsed
    creds = SalesforceCredentials(
        auth_flow="jwt_bearer",
        login_url="https://test.salesforce.com",
        client_id="id",
        username="sync@example.com",
        private_key=escaped,
    )

    # Then the key holds real newlines again
    assert creds.private_key is not None
    assert creds.private_key.strip() == rsa_pem().strip()


@pytest.mark.parametrize(
    ("private_key", "message"),
    [
        ("not a key", "not an unencrypted PEM private key"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            .decode(),
            "must be an RSA key",
        ),
    ],
)
def test_jwt_bearer_refuses_a_key_it_cannot_sign_rs256_with(private_key, message):
    # Given a private key that is not an RSA PEM
    secret = {
        "auth_flow": "jwt_bearer",
        "login_url": "https://login.salesforce.com",
        "client_id": "id",
        "username": "u@example.com",
        "private_key": private_key,
    }

    # When / Then parsing fails
    with pytest.raises(ValidationError, match=message):
        SalesforceCredentials.model_validate(secret)


@pytest.mark.parametrize("login_url", ["http://login.salesforce.com", "login.salesforce.com", ""])
def test_login_url_must_be_https(login_url):
    # Given a login URL that is not https
    secret = {"login_url": login_url, "client_id": "id", "client_secret": "s"}

    # When / Then parsing fails
    with pytest.raises(ValidationError):
        SalesforceCredentials.model_validate(secret)


def test_record_result_from_api_success_and_failure():
    # Given one successful and one failed element of a collections answer
    ok = {"id": "a0A5g0000000001AAA", "success": True, "errors": [], "created": True}
    failed = {
        "success": False,
        "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access", "fields": []}],
    }

    # When they are parsed
    good, bad = RecordResult.from_api(ok), RecordResult.from_api(failed)

    # Then ids, created flags and errors map to our names
    assert (good.success, good.salesforce_id, good.created, good.errors) == (True, "a0A5g0000000001AAA", True, [])
    assert (bad.success, bad.salesforce_id, bad.created) == (False, None, None)
    assert bad.errors == [RecordError(status_code="UNABLE_TO_LOCK_ROW", message="unable to obtain exclusive access")]


@pytest.mark.parametrize(("used", "limit", "percent"), [(90, 100, 90.0), (0, 15000, 0.0), (5, 0, 100.0)])
def test_api_usage_percent(used, limit, percent):
    # Given a usage reading
    usage = ApiUsage(used=used, limit=limit, observed_at=datetime(2026, 1, 1, tzinfo=UTC))

    # When / Then its percent is used over limit
    assert usage.percent == percent


def test_error_hierarchy_separates_retryable_from_permanent():
    # Given the adapter's error types
    limit = SalesforceLimitExceededError("limit")
    request = SalesforceRequestError("bad field", status_code="INVALID_FIELD", http_status=400)

    # When / Then the limit is retryable, a refused request is not, and it carries Salesforce's code
    assert isinstance(limit, SalesforceRetryableError)
    assert not isinstance(request, SalesforceRetryableError)
    assert (request.status_code, request.http_status, request.message) == ("INVALID_FIELD", 400, "bad field")
