"""Held changes in the SyncStateTable: one ``HELD#<account key>`` item per billing account waiting for its CRM
link, whose ``changes`` map holds the newest held version of each record (adapters/aws/tables.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.tables import DYNAMODB_CONFIG
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.state import StateUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HELD_PREFIX = "HELD#"
_BATCH_GET_MAX = 100


def _failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException"


class DynamoHoldStore:
    """HoldStore on the SyncStateTable (key ``pk``)."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or boto3.client("dynamodb", config=DYNAMODB_CONFIG)

    def hold(self, account_key: str, change: QueuedChange) -> None:
        key = {"pk": {"S": HELD_PREFIX + account_key}}
        names = {"#c": "changes", "#r": change.record_key}
        try:
            # A map must exist before a path inside it can be set.
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #c = if_not_exists(#c, :empty)",
                ExpressionAttributeNames={"#c": "changes"},
                ExpressionAttributeValues={":empty": {"M": {}}},
            )
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #c.#r = :held",
                # Newest wins here too: an older change held late never replaces a newer one.
                ConditionExpression="attribute_not_exists(#c.#r) OR #c.#r.version < :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":held": {"M": {"version": {"S": change.version}, "change": {"S": change.model_dump_json()}}},
                    ":v": {"S": change.version},
                },
            )
        except ClientError as exc:
            if _failed(exc):
                raise StateUnavailableError(f"could not hold {change.record_key}") from exc
        except BotoCoreError as exc:
            raise StateUnavailableError(f"could not hold {change.record_key}") from exc

    def held_accounts(self, account_keys: Collection[str]) -> set[str]:
        return {key for key, changes in self._read(account_keys).items() if changes}

    def held_changes(self, account_keys: Collection[str]) -> dict[str, list[QueuedChange]]:
        return {key: changes for key, changes in self._read(account_keys).items() if changes}

    def drop(self, account_key: str, change: QueuedChange) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": HELD_PREFIX + account_key}},
                UpdateExpression="REMOVE #c.#r",
                ConditionExpression="#c.#r.version = :v",
                ExpressionAttributeNames={"#c": "changes", "#r": change.record_key},
                ExpressionAttributeValues={":v": {"S": change.version}},
            )
        except ClientError as exc:
            if _failed(exc):
                raise StateUnavailableError(f"could not drop the held {change.record_key}") from exc
        except BotoCoreError as exc:
            raise StateUnavailableError(f"could not drop the held {change.record_key}") from exc

    def _read(self, account_keys: Collection[str]) -> dict[str, list[QueuedChange]]:
        keys = sorted(set(account_keys))
        found: dict[str, list[QueuedChange]] = {}
        for start in range(0, len(keys), _BATCH_GET_MAX):
            request: Any = {
                self._table: {
                    "Keys": [{"pk": {"S": HELD_PREFIX + k}} for k in keys[start : start + _BATCH_GET_MAX]],
                    "ConsistentRead": True,
                }
            }
            while request:
                try:
                    response = self._client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StateUnavailableError("could not read the held changes") from exc
                for item in response.get("Responses", {}).get(self._table, []):
                    held = item.get("changes", {}).get("M", {})
                    found[item["pk"]["S"].removeprefix(HELD_PREFIX)] = [
                        QueuedChange.model_validate_json(entry["M"]["change"]["S"]) for entry in held.values()
                    ]
                request = response.get("UnprocessedKeys") or {}
        return found
