"""API Gateway -> authorizer: HTTP Basic on the callout API, so that API Gateway can send Zuora the challenge."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.app.authorizer import authorizer_settings, build_authorizer, report_authorization
from nrtsync.app.invocation import Invocation
from nrtsync.app.shared import Lazy
from nrtsync.observability import logger
from nrtsync.services.ingest.authorizer import AuthorizerRequest, CalloutAuthorizer, NotAuthenticatedError

# API Gateway answers 401 (its UNAUTHORIZED gateway response) only for an error with exactly this message;
# any other error is a 500 (AUTHORIZER_FAILURE). See "Output from an API Gateway Lambda authorizer".
UNAUTHORIZED = "Unauthorized"

invocation = Invocation()
# Built on the first request, with a client that gives up within the time that invocation has left.
authorizer: Lazy[CalloutAuthorizer] = Lazy(
    lambda: build_authorizer(authorizer_settings(), remaining_seconds=invocation.remaining_seconds())
)


# log_event=False: the event carries the Authorization header.
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    invocation.start(context)
    request = AuthorizerRequest.from_event(event)
    try:
        policy = authorizer.get().authorize(request)
    except NotAuthenticatedError:
        report_authorization(None)
        raise Exception(UNAUTHORIZED) from None  # noqa: TRY002 - API Gateway matches this exact exception message
    report_authorization(policy)
    return policy
