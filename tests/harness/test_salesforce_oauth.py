"""The stand-in's JWT bearer rules at their edges (the claims over HTTPS: tests/integration/test_salesforce_jwt.py)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nrtsync_local.salesforce.oauth import (
    MAX_ASSERTION_LIFETIME_SECONDS,
    ConnectedApp,
    OAuthRefusalError,
    load_verification_key,
    verify_jwt_bearer_assertion,
)
from tests.support.salesforce import ConnectedAppKeys, make_connected_app_keys

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def keys() -> ConnectedAppKeys:
    return make_connected_app_keys()


def app_for(keys: ConnectedAppKeys, **changes: Any) -> ConnectedApp:
    values: dict[str, Any] = {
        "consumer_key": "3MVG9app",
        "certificate_pem": keys.certificate_pem,
        "username": "u@a.com",
    }
    return ConnectedApp(**{**values, **changes})


def assertion(keys: ConnectedAppKeys, **claims: Any) -> str:
    base = {"iss": "3MVG9app", "sub": "u@a.com", "aud": "https://login.salesforce.com", "exp": int(NOW) + 60}
    return jwt.encode({**base, **claims}, keys.key, algorithm="RS256")


@pytest.mark.parametrize("ahead", [1, 60, MAX_ASSERTION_LIFETIME_SECONDS])
def test_exp_up_to_3_minutes_ahead_is_accepted(keys, ahead):
    # Given an assertion expiring ``ahead`` seconds from now
    # When it is verified / Then its claims come back
    claims = verify_jwt_bearer_assertion(assertion(keys, exp=int(NOW) + ahead), app_for(keys), now=NOW)
    assert claims["exp"] == int(NOW) + ahead


@pytest.mark.parametrize(
    ("exp", "description"),
    [
        (int(NOW), "expired authorization code"),
        (int(NOW) - 1, "expired authorization code"),
        (int(NOW) + MAX_ASSERTION_LIFETIME_SECONDS + 1, "invalid assertion"),
        ("soon", "invalid assertion"),
    ],
)
def test_exp_now_past_or_beyond_3_minutes_is_refused(keys, exp, description):
    # Given an assertion with that exp
    # When it is verified / Then it is refused as Salesforce refuses it
    with pytest.raises(OAuthRefusalError) as raised:
        verify_jwt_bearer_assertion(assertion(keys, exp=exp), app_for(keys), now=NOW)
    assert (raised.value.error, raised.value.description) == ("invalid_grant", description)


def test_audiences_follow_the_org(keys):
    # Given a production org, a sandbox and an org with an Experience Cloud site
    production = app_for(keys)
    sandbox = app_for(keys, sandbox=True)
    site = app_for(keys, experience_site_urls=("https://acme.my.site.com/customers/",))

    # When / Then each accepts its own audiences only (a list of audiences needs one of them)
    assert production.audiences() == {"https://login.salesforce.com"}
    assert sandbox.audiences() == {"https://test.salesforce.com"}
    assert site.audiences() == {"https://login.salesforce.com", "https://acme.my.site.com/customers"}
    verify_jwt_bearer_assertion(
        assertion(keys, aud=["https://x.example", "https://test.salesforce.com"]), sandbox, now=NOW
    )
    with pytest.raises(OAuthRefusalError, match="audience is invalid"):
        verify_jwt_bearer_assertion(assertion(keys, aud="https://test.salesforce.com"), production, now=NOW)


def test_an_app_without_a_certificate_refuses_every_assertion(keys):
    # Given a connected app without "Use digital signatures"
    # When / Then a well-formed assertion is an invalid assertion
    with pytest.raises(OAuthRefusalError, match="invalid assertion"):
        verify_jwt_bearer_assertion(assertion(keys), app_for(keys, certificate_pem=None), now=NOW)


def test_the_verification_key_comes_from_a_certificate_or_a_public_key(keys):
    # Given the app's certificate and its bare public key
    public_pem = (
        keys.key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    # When each is loaded / Then both give the key that signed the assertion
    expected = keys.key.public_key().public_numbers()
    assert load_verification_key(keys.certificate_pem).public_numbers() == expected
    assert load_verification_key(public_pem).public_numbers() == expected


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("not a pem", "not a PEM certificate or public key"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode(),
            "RSA key",
        ),
    ],
)
def test_anything_else_is_not_a_verification_key(pem, message):
    # Given a PEM that is not an RSA certificate or public key
    # When / Then it is refused
    with pytest.raises(ValueError, match=message):
        load_verification_key(pem)
