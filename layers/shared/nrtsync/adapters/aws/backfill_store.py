"""Backfill runs: the ``BACKFILL#<run id>`` items of the SyncStateTable and their index (``adapters.aws.tables``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.calls import conditional_write
from nrtsync.adapters.aws.tables import BACKFILL_INDEX_KEY, DYNAMODB_CONFIG, backfill_item, backfill_key, backfill_of
from nrtsync.ports.backfill import BackfillExistsError, BackfillRun
from nrtsync.ports.state import StateUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoBackfillStore:
    """BackfillStore on the SyncStateTable."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or boto3.client("dynamodb", config=DYNAMODB_CONFIG)

    def create(self, run: BackfillRun) -> None:
        created = conditional_write(
            lambda: self._client.put_item(
                TableName=self._table, Item=backfill_item(run), ConditionExpression="attribute_not_exists(pk)"
            ),
            StateUnavailableError,
            f"could not create the backfill run {run.run_id}",
        )
        if created is None:
            raise BackfillExistsError(f"a backfill run {run.run_id} exists already")
        # After the run itself: an index entry never names a run that does not exist.
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": BACKFILL_INDEX_KEY}},
                UpdateExpression="ADD #runs :run",
                ExpressionAttributeNames={"#runs": "runs"},
                ExpressionAttributeValues={":run": {"SS": [run.run_id]}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise StateUnavailableError(f"could not list the backfill run {run.run_id}") from exc

    def load(self, run_id: str) -> BackfillRun | None:
        item = self._get(backfill_key(run_id))
        if item is None:
            return None
        try:
            return backfill_of(item)
        except (KeyError, ValueError, TypeError) as exc:
            raise StateUnavailableError(f"the backfill run {run_id} cannot be read: {exc}") from exc

    def save(self, run: BackfillRun) -> None:
        try:
            self._client.put_item(TableName=self._table, Item=backfill_item(run))
        except (ClientError, BotoCoreError) as exc:
            raise StateUnavailableError(f"could not save the backfill run {run.run_id}") from exc

    def runs(self) -> list[BackfillRun]:
        index = self._get(BACKFILL_INDEX_KEY) or {}
        found = [self.load(run_id) for run_id in index.get("runs", {}).get("SS", [])]
        return sorted((run for run in found if run is not None), key=lambda r: r.created_at, reverse=True)

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StateUnavailableError(f"could not read {key}") from exc
        return dict(response["Item"]) if "Item" in response else None
