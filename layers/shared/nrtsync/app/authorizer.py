"""The callout authorizer function (API Gateway REQUEST authorizer): its settings, assembly and reporting."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from nrtsync.observability import logger
from nrtsync.services.ingest.settings import AuthorizerSettings

if TYPE_CHECKING:
    from nrtsync.ports.secrets import SecretSource
    from nrtsync.services.ingest.authorizer import CalloutAuthorizer


authorizer_settings = cache(AuthorizerSettings.from_env)


def build_authorizer(settings: AuthorizerSettings, *, secrets: SecretSource | None = None) -> CalloutAuthorizer:
    """The callout authorizer: credentials from Secrets Manager."""
    from nrtsync.adapters.aws.secrets import CachedSecretSource  # noqa: PLC0415
    from nrtsync.services.ingest.authorizer import CalloutAuthorizer  # noqa: PLC0415

    return CalloutAuthorizer(settings, secrets=secrets or CachedSecretSource(max_age=settings.secret_max_age_seconds))


def report_authorization(*, allowed: bool) -> None:
    """The authorizer's verdict (never the credentials: the event carries the Authorization header)."""
    if allowed:
        logger.info("callout authorized")
    else:
        logger.warning("callout refused: no valid Basic credentials")
