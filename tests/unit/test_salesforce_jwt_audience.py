"""The JWT bearer audience in the Salesforce secret: its default per login URL, and the values refused (no network)."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from nrtsync.adapters.salesforce import _token_form
from nrtsync.domain.models.salesforce import SalesforceCredentials

SITE = "https://acme.my.site.com/customers"


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


@pytest.mark.parametrize(
    ("login_url", "extra", "audience"),
    [
        ("https://acme.my.salesforce.com", {}, "https://login.salesforce.com"),
        ("https://acme--dev.sandbox.my.salesforce.com", {}, "https://test.salesforce.com"),
        ("https://acme.my.salesforce.com", {"audience": "https://acme.my.site.com/customers"}, SITE),
    ],
)
def test_the_adapters_assertion_carries_the_audience_and_a_short_exp(login_url, extra, audience):
    # Given a JWT bearer secret
    creds = SalesforceCredentials.model_validate(jwt_secret(login_url, **extra))

    # When the adapter builds its token request
    before = int(time.time())
    form = _token_form(creds)
    claims = jwt.decode(form["assertion"], options={"verify_signature": False})

    # Then the assertion names the audience, the app, the user, and expires within Salesforce's 3 minutes
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert jwt.get_unverified_header(form["assertion"])["alg"] == "RS256"
    assert (claims["aud"], claims["iss"], claims["sub"]) == (audience, "3MVG9abc", "integration@acme.com")
    assert before + 120 <= claims["exp"] <= int(time.time()) + 150
