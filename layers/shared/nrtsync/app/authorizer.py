"""The callout authorizer function (API Gateway REQUEST authorizer): its settings, assembly and reporting."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from nrtsync.observability import logger
from nrtsync.services.ingest.settings import AuthorizerSettings

if TYPE_CHECKING:
    from nrtsync.ports.secrets import SecretSource
    from nrtsync.services.ingest.authorizer import CalloutAuthorizer


authorizer_settings = cache(AuthorizerSettings.from_env)


# template.yaml's CalloutAuthorizerFunction Timeout (tests/unit/test_time_budget.py keeps them equal).
AUTHORIZER_TIMEOUT_SECONDS = 5.0
# Kept to answer API Gateway with the policy or the Unauthorized error.
AUTHORIZER_RESERVE_SECONDS = 0.5


def build_authorizer(
    settings: AuthorizerSettings, *, secrets: SecretSource | None = None, remaining_seconds: float | None = None
) -> CalloutAuthorizer:
    """The callout authorizer: credentials from Secrets Manager, through a client that gives up within the
    invocation's ``remaining_seconds`` (botocore's defaults would wait 60 s to connect and 60 s to read)."""
    from nrtsync.adapters.aws.clients import budgeted_client  # noqa: PLC0415
    from nrtsync.adapters.aws.secrets import CachedSecretSource  # noqa: PLC0415
    from nrtsync.domain.time_budget import split_remaining  # noqa: PLC0415
    from nrtsync.services.ingest.authorizer import CalloutAuthorizer  # noqa: PLC0415

    if secrets is None:
        limits = split_remaining(
            AUTHORIZER_TIMEOUT_SECONDS if remaining_seconds is None else remaining_seconds,
            {"secret": 1.0},
            reserve_seconds=AUTHORIZER_RESERVE_SECONDS,
        )
        client = budgeted_client("secretsmanager", limits["secret"])
        secrets = CachedSecretSource(max_age=settings.secret_max_age_seconds, client=client)
    return CalloutAuthorizer(settings, secrets=secrets)


def report_authorization(policy: dict[str, Any] | None) -> None:
    """The authorizer's result: the policy it returns, or None when it refused (never the credentials: the event
    carries the Authorization header)."""
    if policy is not None:
        logger.info("callout authorized")
    else:
        logger.warning("callout refused: no valid Basic credentials")
