"""The ``ORG#API_USAGE`` item of the state table: the one reader and writer of the org's shared API usage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.tables import API_USAGE_KEY, DYNAMODB_CONFIG, api_usage_item, api_usage_of
from nrtsync.observability import logger
from nrtsync.ports.state import StateUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from nrtsync.ports.salesforce import ApiUsage


class DynamoApiUsageStore:
    """``ApiUsageStore`` on the state table.

    A malformed item reads as no reading at all (None), with a warning in the log: every reader already copes
    with None (the budget guard trusts the live reading, the backfill paces by the queue and the breaker, the
    metrics function publishes nothing), while an exception would stop the sync, the backfill and the metrics
    alike for an item that the next sync overwrites. A table that cannot be read raises ``StateUnavailableError``.
    """

    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or boto3.client("dynamodb", config=DYNAMODB_CONFIG)

    def api_usage(self) -> ApiUsage | None:
        try:
            return self.read()
        except ValueError as exc:
            logger.warning("malformed API usage item read as no reading", extra={"reason": str(exc)})
            return None

    def read(self) -> ApiUsage | None:
        """The stored usage, None before the first; a malformed item raises ``ValueError`` saying what it lacks
        (an operator's status shows that, where the functions read no reading)."""
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": API_USAGE_KEY}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StateUnavailableError("could not read the API usage") from exc
        item = response.get("Item")
        return None if item is None else api_usage_of(item)

    def save_api_usage(self, usage: ApiUsage) -> None:
        try:
            self._client.put_item(TableName=self._table, Item=api_usage_item(usage))
        except (ClientError, BotoCoreError) as exc:
            raise StateUnavailableError("could not save the API usage") from exc
