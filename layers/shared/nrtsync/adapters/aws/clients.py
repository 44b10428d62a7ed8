"""boto3 clients whose timeouts and retries come from a time budget (``nrtsync.domain.time_budget``)."""

from __future__ import annotations

from typing import Any

from botocore.config import Config

from nrtsync.domain.time_budget import PUBLISH_CALL, STANDARD_CALL, CallLimits


def client_config(limits: CallLimits) -> Config:
    """The botocore configuration for ``limits``: standard retries, so the backoff bound holds."""
    return Config(
        connect_timeout=limits.connect_timeout,
        read_timeout=limits.read_timeout,
        retries={"mode": "standard", "total_max_attempts": limits.max_attempts},
    )


def budgeted_client(service: str, limits: CallLimits) -> Any:
    """A boto3 client of ``service`` that gives up within ``limits.worst_case_seconds``."""
    import boto3  # noqa: PLC0415 - only where a client is built, as in the adapters

    return boto3.client(service, config=client_config(limits))  # type: ignore[call-overload]


# The configurations of the clients built without a budget (STANDARD_CALL, PUBLISH_CALL).
STANDARD_CONFIG = client_config(STANDARD_CALL)
PUBLISH_CONFIG = client_config(PUBLISH_CALL)
