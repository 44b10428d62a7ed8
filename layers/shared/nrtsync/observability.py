"""The only place that builds Powertools' logger, tracer and metrics.

Every module logs through these instances so that service name, namespace and correlation ids stay
consistent. Credentials never reach the logs: handlers log parsed models, never raw headers.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
