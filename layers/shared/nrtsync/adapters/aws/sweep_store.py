"""Sweep checkpoints: the ``SWEEP#<sweep>#<object>`` items of the SyncStateTable (``nrtsync.adapters.aws.tables``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.tables import (
    DYNAMODB_CONFIG,
    SWEEP_CURSOR_ATTRIBUTES,
    sweep_cursor_of,
    sweep_cursor_values,
    sweep_key,
)
from nrtsync.ports.state import StateUnavailableError
from nrtsync.ports.sweep import SweepCursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


class DynamoSweepCheckpoints:
    """SweepCheckpoints on the SyncStateTable: one item per sweep and object, its watermark and its cursor."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or boto3.client("dynamodb", config=DYNAMODB_CONFIG)

    def load(self, sweep: str, object_type: str) -> SweepCursor | None:
        item = self._read(sweep, object_type)
        try:
            return sweep_cursor_of(item)
        except (KeyError, ValueError) as exc:
            raise StateUnavailableError(f"the {sweep} cursor of {object_type} cannot be read: {exc}") from exc

    def save(self, sweep: str, cursor: SweepCursor) -> None:
        values = sweep_cursor_values(cursor)
        names = {f"#{name}": name for name in values}
        self._update(
            sweep,
            cursor.object_type,
            "SET " + ", ".join(f"#{name} = :{name}" for name in values),
            names,
            {f":{name}": value for name, value in values.items()},
        )

    def finish(self, sweep: str, cursor: SweepCursor) -> None:
        # One update: the watermark moves and the cursor goes together, so a crash cannot leave a finished
        # window's cursor behind (it would be read again) or a watermark past an unfinished one.
        self._update(
            sweep,
            cursor.object_type,
            "SET #watermark = :watermark REMOVE " + ", ".join(f"#{name}" for name in SWEEP_CURSOR_ATTRIBUTES),
            {"#watermark": "watermark", **{f"#{name}": name for name in SWEEP_CURSOR_ATTRIBUTES}},
            {":watermark": {"S": cursor.until.isoformat()}},
        )

    def watermark(self, sweep: str, object_type: str) -> datetime | None:
        item = self._read(sweep, object_type)
        text = (item or {}).get("watermark", {}).get("S")
        return datetime.fromisoformat(text) if text else None

    def _read(self, sweep: str, object_type: str) -> dict[str, AttributeValueTypeDef] | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": sweep_key(sweep, object_type)}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StateUnavailableError(f"could not read the {sweep} checkpoint of {object_type}") from exc
        return dict(response["Item"]) if "Item" in response else None

    def _update(
        self,
        sweep: str,
        object_type: str,
        expression: str,
        names: dict[str, str],
        values: dict[str, AttributeValueTypeDef],
    ) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": sweep_key(sweep, object_type)}},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StateUnavailableError(f"could not save the {sweep} checkpoint of {object_type}") from exc
