"""Secrets Manager access through Powertools Parameters, with a cache across warm invocations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

from nrtsync.ports.secrets import SecretInvalidError, SecretUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class CachedSecretSource:
    """Reads JSON secrets, caching each for ``max_age`` seconds so rotation is picked up without a redeploy."""

    def __init__(self, *, max_age: int, client: SecretsManagerClient | None = None) -> None:
        self._provider = SecretsProvider(boto3_client=client) if client is not None else SecretsProvider()
        self._max_age = max_age

    def get_json(self, secret_id: str) -> dict[str, Any]:
        try:
            value = self._provider.get(secret_id, transform="json", max_age=self._max_age)
        except TransformParameterError as exc:
            raise SecretInvalidError(f"secret {secret_id} is not JSON") from exc
        except GetParameterError as exc:
            raise SecretUnavailableError(f"secret {secret_id} could not be read") from exc
        if not isinstance(value, dict):
            raise SecretInvalidError(f"secret {secret_id} is not a JSON object")
        return value
