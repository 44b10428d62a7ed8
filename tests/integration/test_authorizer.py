"""The callout API's Lambda authorizer: Basic credentials -> a stage-wide Allow, or API Gateway's 401.

The handler runs against moto's Secrets Manager with the sample REQUEST event in ``events/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from moto import mock_aws

import functions.authorizer.app as authorizer_app
from nrtsync.app.authorizer import authorizer_settings
from nrtsync.domain.basic_auth import CalloutCredentials
from nrtsync.services.ingest.authorizer import (
    AuthorizerRequest,
    MalformedAuthorizerEventError,
    NotAuthenticatedError,
    allow_policy,
    authorize,
    stage_wide_resource,
)
from tests.support.events import CALLOUT_USERNAME, basic_authorization, callout_secret, load_event
from tests.support.lambda_context import FakeLambdaContext

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SECRET_ID = "nrtsync/callout"
METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/POST/callouts"
STAGE_WIDE = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/*/*"
CREDENTIALS = CalloutCredentials.from_secret(callout_secret())


def event(authorization: str | None = None, *, drop_header: bool = False) -> dict[str, Any]:
    loaded = load_event("authorizer_request")
    if drop_header:
        loaded["headers"].pop("Authorization")
        loaded["multiValueHeaders"].pop("Authorization")
    elif authorization is not None:
        loaded["headers"]["Authorization"] = authorization
        loaded["multiValueHeaders"]["Authorization"] = [authorization]
    return loaded


# --- logic -------------------------------------------------------------------------------------------------


def test_the_right_credentials_get_an_allow_for_every_method_of_the_stage() -> None:
    # Given the sample event, whose Authorization header carries the secret's credentials
    request = AuthorizerRequest.from_event(event())

    # When it is authorized
    policy = authorize(request, CREDENTIALS)

    # Then the Allow covers the whole stage: API Gateway caches it per Authorization value and applies it to
    # whatever method the same caller invokes next
    assert policy == {
        "principalId": CALLOUT_USERNAME,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": STAGE_WIDE}],
        },
    }


@pytest.mark.parametrize(
    "authorization",
    [
        basic_authorization(password="not-it"),
        basic_authorization(username="someone-else"),
        "Bearer abc",
        "Basic !!!",
        "",
    ],
    ids=["wrong-password", "wrong-user", "other-scheme", "not-base64", "empty"],
)
def test_wrong_or_empty_credentials_are_not_authenticated(authorization: str) -> None:
    with pytest.raises(NotAuthenticatedError):
        authorize(AuthorizerRequest.from_event(event(authorization)), CREDENTIALS)


def test_no_authorization_header_is_not_authenticated() -> None:
    with pytest.raises(NotAuthenticatedError):
        authorize(AuthorizerRequest.from_event(event(drop_header=True)), CREDENTIALS)


def test_the_header_name_is_case_insensitive() -> None:
    loaded = event(drop_header=True)
    loaded["headers"]["authorization"] = basic_authorization()
    assert AuthorizerRequest.from_event(loaded).authorization == basic_authorization()


@pytest.mark.parametrize(
    ("method_arn", "expected"),
    [
        (METHOD_ARN, STAGE_WIDE),
        (
            "arn:aws:execute-api:us-east-1:000000000000:local/dev/GET/a/b/c",
            "arn:aws:execute-api:us-east-1:000000000000:local/dev/*/*",
        ),
        (
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/POST/",
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/*/*",
        ),
        # The partition comes from the method ARN: the same authorizer serves aws-cn and aws-us-gov
        (
            "arn:aws-cn:execute-api:cn-north-1:123456789012:a1b2c3d4e5/prod/POST/callouts",
            "arn:aws-cn:execute-api:cn-north-1:123456789012:a1b2c3d4e5/prod/*/*",
        ),
        (
            "arn:aws-us-gov:execute-api:us-gov-west-1:123456789012:a1b2c3d4e5/prod/POST/callouts",
            "arn:aws-us-gov:execute-api:us-gov-west-1:123456789012:a1b2c3d4e5/prod/*/*",
        ),
    ],
)
def test_stage_wide_resource(method_arn: str, expected: str) -> None:
    assert stage_wide_resource(method_arn) == expected


@pytest.mark.parametrize(
    "method_arn",
    [
        "arn:aws:lambda:eu-west-1:123456789012:function:x",
        "arn:aws:execute-api:eu-west-1:1:apionly",
        "arn:awsx:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/POST/callouts",
        "",
    ],
)
def test_a_method_arn_that_is_not_one_is_a_configuration_error(method_arn: str) -> None:
    with pytest.raises(MalformedAuthorizerEventError):
        allow_policy("zuora", method_arn)


def test_a_token_authorizer_event_is_a_configuration_error() -> None:
    with pytest.raises(MalformedAuthorizerEventError):
        AuthorizerRequest.from_event({"type": "TOKEN", "methodArn": METHOD_ARN, "authorizationToken": "x"})


def context() -> LambdaContext:
    return cast("LambdaContext", FakeLambdaContext())


# --- handler -----------------------------------------------------------------------------------------------


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("secretsmanager")
        client.create_secret(Name=SECRET_ID, SecretString=json.dumps(callout_secret()))
        monkeypatch.setenv("CALLOUT_SECRET_ID", SECRET_ID)
        monkeypatch.setenv("SECRET_CACHE_SECONDS", "0")
        authorizer_settings.cache_clear()
        authorizer_app.authorizer.use(None)
        yield client
        authorizer_app.authorizer.use(None)
        authorizer_settings.cache_clear()


def test_the_handler_allows_the_sample_event(secrets: Any) -> None:
    policy = authorizer_app.lambda_handler(event(), context())

    assert policy["principalId"] == CALLOUT_USERNAME
    [statement] = policy["policyDocument"]["Statement"]
    assert statement == {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": STAGE_WIDE}


@pytest.mark.parametrize("authorization", [basic_authorization(password="not-it"), None])
def test_the_handler_raises_exactly_unauthorized_for_bad_or_missing_credentials(
    secrets: Any, authorization: str | None
) -> None:
    # API Gateway answers its UNAUTHORIZED gateway response (401 + the challenge) only for this exact error;
    # a Deny policy would be a 403 and Zuora would never send its credentials.
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the exact type and message are what matters
        authorizer_app.lambda_handler(event(authorization, drop_header=authorization is None), context())

    assert type(raised.value) is Exception
    assert str(raised.value) == "Unauthorized"


def test_an_unreadable_secret_is_not_a_401_so_zuora_retries(secrets: Any) -> None:
    # Given the callout secret is gone (Secrets Manager failing or misconfigured)
    secrets.delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)

    # When the authorizer runs, it fails with another error: API Gateway's 500 AUTHORIZER_FAILURE, retried by
    # Zuora, rather than a 401 telling Zuora its correct password is wrong
    with pytest.raises(Exception) as raised:  # noqa: PT011
        authorizer_app.lambda_handler(event(), context())

    assert str(raised.value) != "Unauthorized"


def test_a_rotated_password_is_picked_up(secrets: Any) -> None:
    # Given the password was rotated (the cache age is 0 here)
    secrets.put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps({"username": CALLOUT_USERNAME, "password": "new"})
    )

    # Then the old one is refused and the new one allowed
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer_app.lambda_handler(event(), context())
    policy = authorizer_app.lambda_handler(event(basic_authorization(password="new")), context())
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
