"""API Gateway -> ingest: authenticate and validate a Zuora callout, then put the change on the queue."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.ingest import CalloutEndpoint, CalloutRequest, IngestOutcome
from nrtsync.observability import logger, metrics, tracer
from nrtsync.settings import ingest_settings

app = APIGatewayRestResolver()
_endpoint: CalloutEndpoint | None = None


def endpoint() -> CalloutEndpoint:
    """The endpoint, built on first use so that a test can install its own before the first request."""
    global _endpoint  # noqa: PLW0603 - one instance per warm container is the point
    if _endpoint is None:
        _endpoint = CalloutEndpoint(ingest_settings())
    return _endpoint


def use_endpoint(replacement: CalloutEndpoint | None) -> None:
    """Install an endpoint with other collaborators (tests, the local stack); None rebuilds from settings."""
    global _endpoint  # noqa: PLW0603
    _endpoint = replacement


@app.post("/callouts")
@tracer.capture_method
def post_callout() -> Response[str]:
    outcome = endpoint().handle(CalloutRequest.from_api_gateway(app.current_event))
    _record(outcome)
    return Response(
        status_code=outcome.status_code,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(outcome.body),
        headers=outcome.headers,
    )


def _record(outcome: IngestOutcome) -> None:
    change = outcome.change
    context = {"reason": outcome.reason, "status": outcome.status_code}
    if change is not None:
        context |= {
            "object_type": change.object_type,
            "record_id": change.record_id,
            "notification_id": change.notification_id,
        }
    if outcome.accepted:
        metrics.add_metric(name="CalloutsAccepted", unit=MetricUnit.Count, value=1)
        logger.info("callout queued", extra=context)
        return
    # The total for an alarm, and a separate series per reason for the dashboard.
    metrics.add_metric(name="CalloutsRejected", unit=MetricUnit.Count, value=1)
    with single_metric(
        name="CalloutsRejected", unit=MetricUnit.Count, value=1, default_dimensions=metrics.default_dimensions
    ) as metric:
        metric.add_dimension(name="Reason", value=outcome.reason)
    if outcome.status_code >= 500:
        logger.error("callout not stored; Zuora will retry", extra=context)
    else:
        logger.warning("callout rejected", extra=context | {"errors": outcome.body.get("errors", [])})


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event carries the Authorization header.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
