"""The callout API's Lambda authorizer (REQUEST type): HTTP Basic against the callout secret.

Why it exists: API Gateway's REST API renames a ``WWW-Authenticate`` header that a proxy-integrated function
returns (to ``x-amzn-Remapped-WWW-Authenticate``), so the function cannot send the 401 challenge Zuora's
non-preemptive Basic authentication waits for. A gateway response can: the authorizer makes API Gateway answer
its ``UNAUTHORIZED`` gateway response, whose ``WWW-Authenticate`` header the template sets. A request without
an ``Authorization`` header never reaches the authorizer (it is the identity source); API Gateway answers that
same 401 itself.

What the authorizer returns follows "Output from an API Gateway Lambda authorizer" in the API Gateway developer
guide: a principal id and an IAM policy. API Gateway caches the policy per identity-source value for the
authorizer's TTL and applies it to every method the caller then invokes, so the policy allows the whole
stage (``<api>/<stage>/*/*``), not only the method that was asked for; otherwise a cached Allow for one path
would deny the next.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nrtsync.domain.basic_auth import CalloutCredentials, check_basic_auth
from nrtsync.ports.secrets import SecretSource
from nrtsync.services.ingest.settings import AuthorizerSettings

# Any partition (aws, aws-cn, aws-us-gov...): the policy's resource keeps the one API Gateway sent.
_METHOD_ARN_PREFIX = re.compile(r"arn:aws(-[a-z]+)*:execute-api:")


class NotAuthenticatedError(Exception):
    """The request has no valid credentials: API Gateway must answer 401 (its UNAUTHORIZED gateway response)."""


class MalformedAuthorizerEventError(ValueError):
    """The event is not an API Gateway REQUEST authorizer event; a configuration error, never the caller's."""


@dataclass(frozen=True)
class AuthorizerRequest:
    """The parts of a REQUEST authorizer event the authorizer looks at."""

    method_arn: str
    authorization: str | None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> AuthorizerRequest:
        method_arn = event.get("methodArn")
        if event.get("type") != "REQUEST" or not isinstance(method_arn, str):
            raise MalformedAuthorizerEventError("not a REQUEST authorizer event with a methodArn")
        headers = event.get("headers") or {}
        # Header names arrive as the client spelled them; HTTP header names are case-insensitive.
        authorization = next(
            (str(value) for name, value in headers.items() if str(name).lower() == "authorization"), None
        )
        return cls(method_arn=method_arn, authorization=authorization)


def stage_wide_resource(method_arn: str) -> str:
    """``arn:<partition>:execute-api:region:account:api/stage/*/*`` for a method ARN of that API and stage."""
    if not _METHOD_ARN_PREFIX.match(method_arn):
        raise MalformedAuthorizerEventError(f"not an execute-api method ARN: {method_arn!r}")
    prefix, _, path = method_arn.rpartition(":")
    api_id, _, rest = path.partition("/")
    stage = rest.split("/", 1)[0]
    if not api_id or not stage:
        raise MalformedAuthorizerEventError(f"no API id and stage in the method ARN: {method_arn!r}")
    return f"{prefix}:{api_id}/{stage}/*/*"


def allow_policy(principal_id: str, method_arn: str) -> dict[str, Any]:
    """The authorizer's answer that lets the caller invoke every method of the stage."""
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": stage_wide_resource(method_arn)}
            ],
        },
    }


def authorize(request: AuthorizerRequest, credentials: CalloutCredentials) -> dict[str, Any]:
    """The Allow policy for the right Basic credentials; NotAuthenticatedError for none or wrong ones."""
    if not check_basic_auth(request.authorization, credentials):
        raise NotAuthenticatedError("no valid Basic credentials")
    return allow_policy(credentials.username, request.method_arn)


class CalloutAuthorizer:
    """The authorizer with its secret source (``nrtsync.app.authorizer.build_authorizer`` puts it together).

    A secret that cannot be read raises (``SecretUnavailableError``/``SecretInvalidError``/``ValueError``):
    API Gateway then answers 500 (``AUTHORIZER_FAILURE``), which Zuora retries, instead of a 401 that would
    tell Zuora its correct password is wrong.
    """

    def __init__(self, settings: AuthorizerSettings, *, secrets: SecretSource) -> None:
        self._settings = settings
        self._secrets = secrets

    def authorize(self, request: AuthorizerRequest) -> dict[str, Any]:
        credentials = CalloutCredentials.from_secret(self._secrets.get_json(self._settings.callout_secret_id))
        return authorize(request, credentials)
