"""The circuit breaker's state: the ``ORG#BREAKER`` item of the SyncStateTable (``nrtsync.adapters.aws.tables``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.calls import conditional_write
from nrtsync.adapters.aws.tables import BREAKER_KEY, DYNAMODB_CONFIG, breaker_item, breaker_of, plain_item
from nrtsync.ports.breaker import BreakerState, BreakerUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoBreakerStore:
    """BreakerStore on the SyncStateTable."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or boto3.client("dynamodb", config=DYNAMODB_CONFIG)

    def read(self) -> BreakerState:
        try:
            response = self._client.get_item(TableName=self._table, Key={"pk": {"S": BREAKER_KEY}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise BreakerUnavailableError("could not read the breaker") from exc
        return breaker_of(response.get("Item"))

    def stored(self) -> dict[str, Any] | None:
        """The breaker's item as stored (plain values, its key left out), None when the breaker never opened: what
        an operator's status shows, whatever the item holds."""
        try:
            response = self._client.get_item(TableName=self._table, Key={"pk": {"S": BREAKER_KEY}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise BreakerUnavailableError("could not read the breaker") from exc
        item = response.get("Item")
        return None if item is None else {k: v for k, v in plain_item(item).items() if k != "pk"}

    def write(self, state: BreakerState, *, expected: BreakerState | None = None) -> bool:
        condition: dict[str, Any] = {}
        if expected is not None:
            condition = _unchanged_since(expected)
        landed = conditional_write(
            lambda: self._client.put_item(TableName=self._table, Item=breaker_item(state), **condition),
            BreakerUnavailableError,
            "could not write the breaker",
        )
        return landed is not None

    def count_failure(self, at: datetime) -> int:
        # ADD is atomic: concurrent invocations each count their failed call once.
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": BREAKER_KEY}},
                UpdateExpression="ADD failures :one SET last_failure_at = :t",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":t": {"S": at.astimezone(UTC).isoformat(timespec="seconds")},
                },
                ReturnValues="UPDATED_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            raise BreakerUnavailableError("could not count a failed call") from exc
        return int(response.get("Attributes", {}).get("failures", {}).get("N", "1"))

    def reset_failures(self) -> None:
        # Conditional, so a healthy session (the common case) only reads the count, and writes nothing.
        conditional_write(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": BREAKER_KEY}},
                UpdateExpression="SET failures = :zero",
                ConditionExpression="failures > :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            ),
            BreakerUnavailableError,
            "could not reset the failure count",
        )


def _unchanged_since(expected: BreakerState) -> dict[str, Any]:
    """The PutItem condition that the stored breaker is still ``expected`` (what the writer read and decided on)."""
    if not expected.is_open:
        # Closed, or no item yet: whatever closed it, an open state written meanwhile must not be replaced.
        return {
            "ConditionExpression": "attribute_not_exists(#state) OR #state = :closed",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": {":closed": {"S": "closed"}},
        }
    # Open: the same opening (a pause, or another trip, writes another reason, by or updated_at).
    item = breaker_item(expected)
    names = {"#state": "state", "#reason": "reason", "#by": "by", "#updated": "updated_at"}
    values = {":open": {"S": "open"}, ":by": item["by"]}
    parts = ["#state = :open", "#by = :by"]
    for name, placeholder, key in (("#reason", ":reason", "reason"), ("#updated", ":updated", "updated_at")):
        if key in item:
            parts.append(f"{name} = {placeholder}")
            values[placeholder] = item[key]
        else:
            parts.append(f"attribute_not_exists({name})")
    return {
        "ConditionExpression": " AND ".join(parts),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
