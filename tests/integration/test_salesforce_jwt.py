"""The JWT bearer flow over real HTTPS: the stand-in verifies assertions as Salesforce does, and the adapter's
audience (explicit, or the default for its login URL) is one Salesforce accepts, whatever URL it posts to."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests

from nrtsync.adapters.salesforce import SimpleSalesforceAdapter
from nrtsync.domain.models.salesforce import (
    CollectionUpsert,
    RecordResult,
    SalesforceAuthError,
    SalesforceCredentials,
    SalesforceError,
)
from tests.support.salesforce import (
    ConnectedAppKeys,
    StandinClient,
    make_connected_app_keys,
    routed_session,
    running_salesforce_standin,
    trusting_session,
)

pytestmark = pytest.mark.integration

USER = "nrtsync-integration@acme.com"
ACCOUNTS = "Zuora__CustomerAccount__c"
EXT = "Zuora__External_Id__c"
LOGIN = "https://login.salesforce.com"
TEST = "https://test.salesforce.com"
SITE = "https://acme.my.site.com/customers"
MY_DOMAIN = "https://acme.my.salesforce.com"
SANDBOX_MY_DOMAIN = "https://acme--dev.sandbox.my.salesforce.com"
TOKEN_PATH = "/services/oauth2/token"
DROP = object()  # a claim left out of the assertion


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinClient]:
    with running_salesforce_standin() as client:
        yield client


@pytest.fixture(scope="module")
def keys() -> ConnectedAppKeys:
    return make_connected_app_keys()


@pytest.fixture(scope="module")
def other_keys() -> ConnectedAppKeys:
    return make_connected_app_keys("not-the-app")


@pytest.fixture(autouse=True)
def production_org(standin: StandinClient, keys: ConnectedAppKeys) -> Iterator[None]:
    """Every test starts with a production org whose connected app has ``keys``' certificate and one user."""
    standin.reset()
    standin.configure(
        jwt_certificate_pem=keys.certificate_pem, jwt_username=USER, sandbox=False, experience_site_urls=[]
    )
    yield
    standin.configure(sandbox=False, experience_site_urls=[])


@pytest.fixture(scope="module")
def http(standin: StandinClient) -> Iterator[requests.Session]:
    session = trusting_session(standin.ca_file)
    yield session
    session.close()


def post_assertion(
    standin: StandinClient, http: requests.Session, signing_key: Any, *, algorithm: str = "RS256", **overrides: Any
) -> requests.Response:
    claims: dict[str, Any] = {"iss": standin.client_id, "sub": USER, "aud": LOGIN, "exp": int(time.time()) + 60}
    claims.update(overrides)
    assertion = jwt.encode({k: v for k, v in claims.items() if v is not DROP}, signing_key, algorithm=algorithm)
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    return http.post(f"{standin.url}{TOKEN_PATH}", data=form, timeout=5)


def refusal(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body.get("error", ""), body.get("error_description", "")


# --- the stand-in's token endpoint ----------------------------------------------------------------------------


def test_a_right_assertion_gets_a_token(standin, http, keys):
    # Given an assertion signed with the app's key, for its user, to the production audience
    # When it is posted
    response = post_assertion(standin, http, keys.key)

    # Then a token comes back with the JWT bearer answer's shape (no scope)
    assert response.status_code == 200, response.text
    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"} <= response.json().keys()
    assert "scope" not in response.json()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"iss": "3MVG9someone.else"}, ("invalid_client_id", "client identifier invalid"), id="iss"),
        pytest.param({"sub": "someone@acme.com"}, ("invalid_grant", "user hasn't approved this consumer"), id="sub"),
        pytest.param({"aud": "TOKEN_ENDPOINT"}, ("invalid_grant", "audience is invalid"), id="aud-token-endpoint"),
        pytest.param({"aud": MY_DOMAIN}, ("invalid_grant", "audience is invalid"), id="aud-my-domain"),
        pytest.param({"aud": TEST}, ("invalid_grant", "audience is invalid"), id="aud-sandbox-on-production"),
        pytest.param({"aud": LOGIN + TOKEN_PATH}, ("invalid_grant", "audience is invalid"), id="aud-token-url"),
        pytest.param({"aud": DROP}, ("invalid_grant", "audience is invalid"), id="aud-missing"),
        pytest.param({"exp": "PAST"}, ("invalid_grant", "expired authorization code"), id="exp-past"),
        pytest.param({"exp": "FAR"}, ("invalid_grant", "invalid assertion"), id="exp-over-3-minutes"),
        pytest.param({"exp": DROP}, ("invalid_grant", "invalid assertion"), id="exp-missing"),
    ],
)
def test_each_broken_claim_is_refused_with_salesforces_answer(standin, http, keys, overrides, expected):
    # Given an assertion that is right but for one claim
    now = int(time.time())
    placeholders = {"TOKEN_ENDPOINT": standin.url, "PAST": now - 5, "FAR": now + 600}
    claims = {
        name: placeholders.get(value, value) if isinstance(value, str) else value for name, value in overrides.items()
    }

    # When it is posted
    response = post_assertion(standin, http, keys.key, **claims)

    # Then it is refused with Salesforce's OAuth error body, and no token is issued
    assert refusal(response) == (400, *expected)
    assert standin.stats()["tokens_issued"] == 0


def test_a_signature_by_another_key_or_algorithm_is_an_invalid_assertion(standin, http, other_keys):
    # Given assertions signed by a key the app does not know, and with HS256 keyed by the consumer key
    wrong_key = post_assertion(standin, http, other_keys.key)
    wrong_algorithm = post_assertion(standin, http, standin.client_id.encode() * 3, algorithm="HS256")
    garbage = http.post(
        f"{standin.url}{TOKEN_PATH}",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "not.a.jwt"},
        timeout=5,
    )

    # Then each is refused as an invalid assertion
    for response in (wrong_key, wrong_algorithm, garbage):
        assert refusal(response) == (400, "invalid_grant", "invalid assertion")


def test_a_sandbox_org_wants_the_test_audience(standin, http, keys):
    # Given the org is a sandbox
    standin.configure(sandbox=True)

    # When assertions for each login audience are posted
    test_audience = post_assertion(standin, http, keys.key, aud=TEST)
    login_audience = post_assertion(standin, http, keys.key, aud=LOGIN)

    # Then only test.salesforce.com is its audience
    assert test_audience.status_code == 200, test_audience.text
    assert refusal(login_audience) == (400, "invalid_grant", "audience is invalid")


def test_an_experience_cloud_site_is_an_audience_once_the_org_has_it(standin, http, keys):
    # Given an assertion for an Experience Cloud site the org does not have yet
    before = post_assertion(standin, http, keys.key, aud=SITE)

    # When the site is configured
    standin.configure(experience_site_urls=[SITE])
    after = post_assertion(standin, http, keys.key, aud=SITE)

    # Then the same audience is refused before and accepted after
    assert refusal(before) == (400, "invalid_grant", "audience is invalid")
    assert after.status_code == 200, after.text


def test_no_pre_authorised_user_means_no_token(standin, http, keys):
    # Given a connected app with no pre-authorised user
    standin.configure(jwt_username=None)

    # When a right assertion is posted
    response = post_assertion(standin, http, keys.key)

    # Then nobody gets a token
    assert refusal(response) == (400, "invalid_grant", "user hasn't approved this consumer")


def test_a_certificate_that_is_not_a_pem_is_refused_when_configured(standin):
    # Given a certificate that is not PEM
    # When it is configured / Then the control API refuses it and the app keeps its certificate
    with pytest.raises(requests.HTTPError, match="400"):
        standin.configure(jwt_certificate_pem="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    assert standin.config()["jwt_certificate_configured"] is True


# --- the adapter: its audience, whatever the login URL --------------------------------------------------------


def jwt_adapter(
    standin: StandinClient, keys: ConnectedAppKeys, login_url: str, **secret: Any
) -> SimpleSalesforceAdapter:
    """An adapter whose secret names ``login_url``; requests to it reach the stand-in (see ``routed_session``)."""
    credentials = SalesforceCredentials.model_validate(
        {
            "auth_flow": "jwt_bearer",
            "login_url": login_url,
            "client_id": standin.client_id,
            "username": USER,
            "private_key": keys.private_pem,
            **secret,
        }
    )
    return SimpleSalesforceAdapter(
        lambda: credentials,
        session=routed_session(standin, MY_DOMAIN, SANDBOX_MY_DOMAIN),
        sleep=lambda _seconds: None,
        timeout_seconds=5.0,
    )


def soon() -> float:
    return time.monotonic() + 10.0


def upsert_one(adapter: SimpleSalesforceAdapter) -> list[RecordResult]:
    """One account (with the Salesforce Account it belongs to, its master-detail) upserted as one sObject Collections
    call; the error Salesforce answers for it is raised."""
    account = {EXT: "A1", "Zuora__Account__c": "0015g00000XyZ12AAB"}
    [answer] = adapter.upsert_collections(
        [CollectionUpsert(sobject=ACCOUNTS, external_id_field=EXT, records=[account])], deadline=soon()
    )
    if isinstance(answer, SalesforceError):
        raise answer
    return answer


def test_a_my_domain_login_url_without_audience_gets_a_token(standin, keys):
    # Given a production org's My Domain as the login URL and no audience in the secret
    adapter = jwt_adapter(standin, keys, MY_DOMAIN)

    # When a record is upserted (the token is requested from the My Domain's token endpoint)
    results = upsert_one(adapter)

    # Then the assertion named login.salesforce.com and was accepted
    assert results[0].success
    assert standin.stats()["tokens_issued"] == 1


def test_a_sandbox_my_domain_defaults_to_the_test_audience(standin, keys):
    # Given a sandbox org, reached at its enhanced-domain sandbox My Domain, with no audience in the secret
    standin.configure(sandbox=True)
    adapter = jwt_adapter(standin, keys, SANDBOX_MY_DOMAIN)

    # When a record is upserted
    results = upsert_one(adapter)

    # Then the assertion named test.salesforce.com and was accepted
    assert results[0].success
    assert standin.stats()["tokens_issued"] == 1


def test_an_explicit_experience_cloud_audience_is_used(standin, keys):
    # Given an org with an Experience Cloud site named as the secret's audience
    standin.configure(experience_site_urls=[SITE])
    adapter = jwt_adapter(standin, keys, MY_DOMAIN, audience=SITE + "/")

    # When a record is upserted
    results = upsert_one(adapter)

    # Then the site (without the trailing slash) was the audience
    assert results[0].success


def test_an_audience_the_org_refuses_is_an_auth_error_without_retries(standin, keys):
    # Given a production org and a secret that names the sandbox audience
    adapter = jwt_adapter(standin, keys, MY_DOMAIN, audience=TEST)

    # When a record is upserted
    with pytest.raises(SalesforceAuthError, match="invalid_grant: audience is invalid"):
        upsert_one(adapter)

    # Then the token endpoint was asked once and no API call was made
    assert standin.stats()["token_requests"] == 1
    assert adapter.api_calls == 0


def test_a_secret_with_a_bad_audience_is_an_auth_error_naming_the_field(standin, keys):
    # Given a secret whose audience is the My Domain (the mistake the old docs suggested)
    secret = {
        "auth_flow": "jwt_bearer",
        "login_url": MY_DOMAIN,
        "client_id": standin.client_id,
        "username": USER,
        "private_key": keys.private_pem,
        "audience": MY_DOMAIN,
    }
    adapter = SimpleSalesforceAdapter(
        lambda: SalesforceCredentials.model_validate(secret), session=standin.session(), sleep=lambda _s: None
    )

    # When a record is upserted
    with pytest.raises(SalesforceAuthError) as raised:
        upsert_one(adapter)

    # Then nothing was sent, the error names the field, and the private key is not in it
    message = str(raised.value)
    assert message.startswith("the Salesforce secret is invalid: audience:")
    assert "not a My Domain" in message
    assert "PRIVATE KEY" not in message
    assert raised.value.__cause__ is None
    assert standin.stats()["token_requests"] == 0


def test_the_command_line_configures_the_connected_app(tmp_path, keys):
    # Given the stand-in started with the app's certificate file, its user, as a sandbox with a site
    certificate = tmp_path / "app.crt"
    certificate.write_text(keys.certificate_pem)
    args = [
        "--jwt-certificate-file",
        str(certificate),
        "--jwt-username",
        USER,
        "--sandbox",
        "--experience-site-url",
        SITE,
    ]
    with running_salesforce_standin(args) as sandbox, trusting_session(sandbox.ca_file) as session:
        # When assertions for the sandbox audience, the site and the production audience are posted
        answers = [post_assertion(sandbox, session, keys.key, aud=aud) for aud in (TEST, SITE, LOGIN)]
        config = sandbox.config()

    # Then the configuration is the command line's, and only the production audience is refused
    assert (config["jwt_certificate_configured"], config["jwt_username"], config["sandbox"]) == (True, USER, True)
    assert config["experience_site_urls"] == [SITE]
    assert [answer.status_code for answer in answers] == [200, 200, 400]
    assert refusal(answers[2]) == (400, "invalid_grant", "audience is invalid")
