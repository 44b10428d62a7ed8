"""The JWT bearer audience in the Salesforce secret: its default per login URL, and the values refused (no network)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from nrtsync.models.salesforce import SalesforceCredentials


@cache
def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def jwt_secret(login_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "auth_flow": "jwt_bearer",
        "login_url": login_url,
        "client_id": "3MVG9abc",
        "username": "integration@acme.com",
        "private_key": rsa_pem(),
        **extra,
    }


@pytest.mark.parametrize(
    ("login_url", "audience"),
    [
        ("https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
        ("https://acme.my.salesforce.com/", "https://login.salesforce.com"),
        ("https://acme-corp.develop.my.salesforce.com", "https://login.salesforce.com"),
        ("https://test.salesforce.com", "https://test.salesforce.com"),
        ("https://acme--dev.sandbox.my.salesforce.com", "https://test.salesforce.com"),
        ("https://ACME--Dev.sandbox.my.salesforce.com", "https://test.salesforce.com"),
        ("https://acme--dev.my.salesforce.com", "https://test.salesforce.com"),
        ("https://acme--uat.cs42.my.salesforce.com", "https://test.salesforce.com"),
        ("https://cs42.salesforce.com", "https://test.salesforce.com"),
    ],
)
def test_audience_defaults_by_the_login_url(login_url, audience):
    # Given a JWT bearer secret without an audience
    # When it is parsed
    creds = SalesforceCredentials.model_validate(jwt_secret(login_url))

    # Then the audience is login.salesforce.com, or test.salesforce.com for a sandbox, never the My Domain itself
    assert creds.audience is None
    assert creds.jwt_audience == audience
    assert creds.token_url == f"{login_url.rstrip('/').lower()}/services/oauth2/token"


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        ("https://test.salesforce.com", "https://test.salesforce.com"),
        ("https://login.salesforce.com/", "https://login.salesforce.com"),
        ("https://acme.my.site.com/customers/", "https://acme.my.site.com/customers"),
    ],
)
def test_an_explicit_audience_wins_over_the_default(audience, expected):
    # Given a secret naming its audience
    creds = SalesforceCredentials.model_validate(jwt_secret("https://acme.my.salesforce.com", audience=audience))

    # When / Then that audience is used, without a trailing slash
    assert creds.jwt_audience == expected


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ("http://login.salesforce.com", "audience must use https"),
        ("login.salesforce.com", "valid URL"),
        ("", "valid URL"),
        ("https://acme.my.salesforce.com", "not a My Domain"),
        ("https://acme--dev.sandbox.my.salesforce.com", "not a My Domain"),
        ("https://login.salesforce.com/services/oauth2/token", "without a path"),
        ("https://test.salesforce.com?x=1", "query or fragment"),
    ],
)
def test_a_bad_audience_is_refused_naming_the_field(audience, message):
    # Given a secret with an audience Salesforce would never accept
    secret = jwt_secret("https://acme.my.salesforce.com", audience=audience)

    # When it is parsed / Then it fails, naming the audience field and why
    with pytest.raises(ValidationError, match=message) as raised:
        SalesforceCredentials.model_validate(secret)
    assert [error["loc"] for error in raised.value.errors()] == [("audience",)]
