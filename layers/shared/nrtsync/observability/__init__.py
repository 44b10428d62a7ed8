"""The only place that builds Powertools' logger and metrics.

Every module logs through these instances so that service name, namespace and correlation ids stay
consistent. Credentials never reach the logs: handlers log parsed models, never raw headers.

No Powertools ``Tracer``: it imports the X-Ray SDK (in maintenance mode since 2026-02-25, about 200 ms of every
function's cold import). Lambda's active tracing and API Gateway's tracing need no SDK in the function; where
subsegments are wanted, OpenTelemetry through the ADOT layer is AWS's documented path.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
