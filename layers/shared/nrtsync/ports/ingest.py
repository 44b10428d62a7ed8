"""The ingest and authorizer functions' contracts: the queue a change goes to and the secrets it is checked with."""

from __future__ import annotations

from typing import Any, Protocol

from nrtsync.models.callout import QueuedChange


class QueueUnavailableError(RuntimeError):
    """The change could not be stored on the queue (retryable: the caller answers 5xx so Zuora retries)."""


class ChangeQueue(Protocol):
    def send(self, change: QueuedChange) -> str: ...


class SecretUnavailableError(RuntimeError):
    """The secret could not be read now (retryable: Secrets Manager or the network is failing)."""


class SecretInvalidError(RuntimeError):
    """The secret was read but is not the JSON object we need (an operator must fix it)."""


class SecretSource(Protocol):
    def get_json(self, secret_id: str) -> dict[str, Any]: ...
