"""Secrets Manager's contract: a secret's JSON, cached, with errors that say whether to retry."""

from __future__ import annotations

from typing import Any, Protocol


class SecretUnavailableError(RuntimeError):
    """The secret could not be read now (retryable: Secrets Manager or the network is failing)."""


class SecretInvalidError(RuntimeError):
    """The secret was read but is not the JSON object we need (an operator must fix it)."""


class SecretSource(Protocol):
    def get_json(self, secret_id: str) -> dict[str, Any]: ...
