"""The ingest function (API Gateway -> SQS): its settings, assembly and reporting."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from nrtsync.observability import logger, metrics
from nrtsync.observability.names import (
    CALLOUTS_ACCEPTED,
    CALLOUTS_REJECTED,
    REASON_DIMENSION,
)
from nrtsync.services.ingest.settings import IngestSettings

if TYPE_CHECKING:
    from nrtsync.ports.queue import ChangeQueue
    from nrtsync.ports.secrets import SecretSource
    from nrtsync.services.ingest.endpoint import CalloutEndpoint, IngestOutcome


ingest_settings = cache(IngestSettings.from_env)

# template.yaml's IngestFunction Timeout (tests/unit/test_time_budget.py keeps them equal).
INGEST_TIMEOUT_SECONDS = 10.0
# Kept to answer: the response, the log line, the EMF flush.
INGEST_RESERVE_SECONDS = 1.0
# A callout reads the secret (mostly from the cache) and then sends; a cold secret read and a slow queue together
# still fit.
INGEST_SHARES = {"secret": 0.4, "queue": 0.6}


def build_ingest(
    settings: IngestSettings,
    *,
    queue: ChangeQueue | None = None,
    secrets: SecretSource | None = None,
    object_types: frozenset[str] | None = None,
    remaining_seconds: float | None = None,
) -> CalloutEndpoint:
    """The callout endpoint: changes to SQS, credentials from Secrets Manager, object types from the mapping.

    The clients' timeouts and retries fit the invocation's ``remaining_seconds`` (the function's timeout on a
    container's first invocation): the secret read and the send, one after the other, end in time for the
    endpoint's own ``503`` to reach API Gateway. None (outside Lambda): the function's default timeout.
    """
    from nrtsync.adapters.aws.clients import budgeted_client  # noqa: PLC0415 - see the module docstring
    from nrtsync.adapters.aws.secrets import CachedSecretSource  # noqa: PLC0415
    from nrtsync.adapters.aws.sqs import SqsChangeQueue  # noqa: PLC0415
    from nrtsync.domain.mapping import cached_mapping  # noqa: PLC0415
    from nrtsync.domain.time_budget import split_remaining  # noqa: PLC0415
    from nrtsync.services.ingest.endpoint import CalloutEndpoint  # noqa: PLC0415

    limits = split_remaining(
        INGEST_TIMEOUT_SECONDS if remaining_seconds is None else remaining_seconds,
        INGEST_SHARES,
        reserve_seconds=INGEST_RESERVE_SECONDS,
    )
    return CalloutEndpoint(
        settings,
        queue=queue or SqsChangeQueue(settings.queue_url, client=budgeted_client("sqs", limits["queue"])),
        secrets=secrets
        or CachedSecretSource(
            max_age=settings.secret_max_age_seconds, client=budgeted_client("secretsmanager", limits["secret"])
        ),
        object_types=object_types or frozenset(cached_mapping(settings.mapping_path).objects),
    )


def report_callout(outcome: IngestOutcome) -> None:
    """One log line per callout and its EMF count; a rejection also counts per reason for the dashboard."""
    change = outcome.change
    context: dict[str, object] = {"reason": outcome.reason, "status": outcome.status_code}
    if change is not None:
        context |= {
            "object_type": change.object_type,
            "record_id": change.record_id,
            "notification_id": change.notification_id,
        }
    if outcome.accepted:
        metrics.add_metric(name=CALLOUTS_ACCEPTED, unit=MetricUnit.Count, value=1)
        logger.info("callout queued", extra=context)
        return
    # The total for an alarm, and a separate series per reason for the dashboard.
    metrics.add_metric(name=CALLOUTS_REJECTED, unit=MetricUnit.Count, value=1)
    with single_metric(
        name=CALLOUTS_REJECTED, unit=MetricUnit.Count, value=1, default_dimensions=metrics.default_dimensions
    ) as metric:
        metric.add_dimension(name=REASON_DIMENSION, value=outcome.reason)
    if outcome.status_code >= 500:
        logger.error("callout not stored; Zuora will retry", extra=context)
    else:
        logger.warning("callout rejected", extra=context | {"errors": outcome.body.get("errors", [])})
