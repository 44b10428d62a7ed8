"""API Gateway -> authorizer: HTTP Basic on the callout API, so that API Gateway can send Zuora the challenge."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.authorizer import CalloutAuthorizer, NotAuthenticatedError
from nrtsync.observability import logger
from nrtsync.settings import authorizer_settings

# API Gateway answers 401 (its UNAUTHORIZED gateway response) only for an error with exactly this message;
# any other error is a 500 (AUTHORIZER_FAILURE). See "Output from an API Gateway Lambda authorizer".
UNAUTHORIZED = "Unauthorized"

_authorizer: CalloutAuthorizer | None = None


def authorizer() -> CalloutAuthorizer:
    """The authorizer, built on first use so that a test can install its own before the first request."""
    global _authorizer  # noqa: PLW0603 - one instance per warm container is the point
    if _authorizer is None:
        _authorizer = CalloutAuthorizer(authorizer_settings())
    return _authorizer


def use_authorizer(replacement: CalloutAuthorizer | None) -> None:
    """Install an authorizer with other collaborators (tests, the local stack); None rebuilds from settings."""
    global _authorizer  # noqa: PLW0603
    _authorizer = replacement


# log_event=False: the event carries the Authorization header.
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        policy = authorizer().authorize(event)
    except NotAuthenticatedError:
        logger.warning("callout refused: no valid Basic credentials")
        raise Exception(UNAUTHORIZED) from None  # noqa: TRY002 - API Gateway matches this exact exception message
    logger.info("callout authorized")
    return policy
