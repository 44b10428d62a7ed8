"""API Gateway -> ingest: authenticate and validate a Zuora callout, then put the change on the queue."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from nrtsync.app.ingest import build_ingest, ingest_settings, report_callout
from nrtsync.app.invocation import Invocation
from nrtsync.app.shared import Lazy
from nrtsync.observability import logger, metrics
from nrtsync.services.ingest.endpoint import CalloutEndpoint, CalloutRequest

app = APIGatewayRestResolver()
invocation = Invocation()
# Built on the first callout, with clients that give up within the time that invocation has left.
endpoint: Lazy[CalloutEndpoint] = Lazy(
    lambda: build_ingest(ingest_settings(), remaining_seconds=invocation.remaining_seconds())
)


@app.post("/callouts")
def post_callout() -> Response[str]:
    request = CalloutRequest.from_api_gateway(app.current_event)
    outcome = endpoint.get().handle(request)
    report_callout(outcome)
    return Response(
        status_code=outcome.status_code,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(outcome.body),
        headers=outcome.headers,
    )


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event carries the Authorization header.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    invocation.start(context)
    return app.resolve(event, context)
