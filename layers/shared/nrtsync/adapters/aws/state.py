"""The sync state: the last version written per record, and per-record leases, in DynamoDB.

Newest wins across concurrent invocations because a change is written to Salesforce only under a lease on
its record, taken with a conditional write that also checks that nothing newer (or the same change) has
been written. A lease outlives the invocation that holds it, so a crashed writer blocks the record only
until its lease expires; the blocked change is retried, never dropped.

A write whose failure leaves it in doubt (Salesforce may still commit it) leaves ``doubt_until`` and
``doubt_hash`` behind: until then only that same change may claim the record (re-sending it is harmless), so no
other version is written for the late commit to overwrite.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.api_usage import DynamoApiUsageStore
from nrtsync.adapters.aws.calls import conditional_write
from nrtsync.adapters.aws.tables import DYNAMODB_CONFIG, KEPT_PREFIX
from nrtsync.ports.salesforce import ApiUsage
from nrtsync.ports.state import Claim, ClaimStatus, StateUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_BATCH_GET_MAX = 100  # DynamoDB BatchGetItem's limit per request
# A settled notification id is kept as long as Zuora's retry of it can still be on the queue: the callout queue's
# MessageRetentionPeriod (template.yaml's CalloutQueue, 14 days)...
SETTLED_NOTIFICATION_RETENTION_MS = 1_209_600 * 1000
# ... and at most this many per record, newest kept: 100 ids of at most 200 characters are under 25 KB of the
# item's 400 KB, whatever else it holds.
SETTLED_NOTIFICATIONS_MAX = 100
_BATCH_GET_TRIES = 4


class RecordLeasedError(StateUnavailableError):
    """A sync holds the record's lease: its state cannot be forgotten now."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class DynamoVersionStore:
    """VersionStore on the SyncStateTable (key ``pk``)."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or boto3.client("dynamodb", config=DYNAMODB_CONFIG)
        self._usage = DynamoApiUsageStore(table_name, client=self._client)

    def claim(
        self,
        record_key: str,
        version: str,
        content_hash: str,
        *,
        owner: str,
        lease_until_ms: int,
        notification_id: str | None = None,
    ) -> Claim:
        """Take the record's lease for ``version`` unless it is stale, a duplicate (the same content, or a
        notification id already settled for the record), or leased by another."""
        condition = (
            "(attribute_not_exists(written_version) OR written_version < :v)"
            " AND (attribute_not_exists(written_hash) OR written_hash <> :h)"
            " AND (attribute_not_exists(lease_until) OR lease_until < :now)"
            " AND (attribute_not_exists(doubt_until) OR doubt_until < :now OR doubt_hash = :h)"
        )
        extra: dict[str, Any] = {}
        if notification_id:
            condition += " AND attribute_not_exists(settled.#nid)"
            extra["ExpressionAttributeNames"] = {"#nid": notification_id}
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": record_key}},
                UpdateExpression="SET lease_owner = :o, lease_until = :u, lease_version = :v, lease_hash = :h",
                ConditionExpression=condition,
                ExpressionAttributeValues={
                    ":o": {"S": owner},
                    ":u": {"N": str(lease_until_ms)},
                    ":v": {"S": version},
                    ":h": {"S": content_hash},
                    ":now": {"N": str(_now_ms())},
                },
                ReturnValues="ALL_OLD",  # the settled ids, which the commit carries on
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **extra,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StateUnavailableError(f"could not claim {record_key}") from exc
            returned: Any = exc.response.get("Item")  # ReturnValuesOnConditionCheckFailure=ALL_OLD
            old = returned if isinstance(returned, dict) else self._read(record_key)
            return _why_not(old, version, content_hash, notification_id)
        except BotoCoreError as exc:
            raise StateUnavailableError(f"could not claim {record_key}") from exc
        old_item = response.get("Attributes") or {}
        return Claim(ClaimStatus.CLAIMED, old_item.get("written_version", {}).get("S"), settled=settled_of(old_item))

    def commit(
        self,
        record_key: str,
        version: str,
        content_hash: str,
        *,
        owner: str,
        salesforce_id: str | None,
        kept: Mapping[str, str | None] | None = None,
        deleted: bool = False,
        notification_id: str | None = None,
        settled: Mapping[str, int] | None = None,
        recheck: bool = False,
        doubt_until_ms: int | None = None,
    ) -> bool:
        """Record ``version`` as written and drop the lease; False if the lease was no longer ours.

        ``doubt_until_ms``: the write succeeded only after an attempt in doubt, which may still commit: until then
        the record stays closed to every other change (``doubt_until``, ``doubt_hash``), as after a failure in doubt.

        ``recheck``: the record gets ``recheck`` (``settled_versions`` then leaves it out, so the next reconcile run
        reads it again from Zuora); without it the mark is removed.

        ``notification_id`` joins the record's settled ids (``settled``, as the claim returned them), pruned to
        their bound (``settled_notifications_after``): a retry of it by Zuora is then a duplicate. Only the
        lease's owner commits, so nothing changed them between the claim and this write.

        ``deleted``: the version is a delete. The item stays as a tombstone (``written_version``, ``deleted``,
        the Id that was deleted), so the claim's ``written_version < :v`` keeps every older change stale; a newer
        change claims as usual and its commit sets ``deleted`` back to false (docs/CALLOUTS.md, "Deletes").

        ``kept``: field values of this change that children inherit (None: the change had it empty). They are
        written in the same conditional update, so they always belong to the version recorded as written.
        """
        values: dict[str, Any] = {
            ":o": {"S": owner},
            ":v": {"S": version},
            ":h": {"S": content_hash},
            ":t": {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
            ":sf": {"S": salesforce_id} if salesforce_id else {"NULL": True},
            ":d": {"BOOL": deleted},
        }
        names: dict[str, str] = {}
        sets = "SET written_version = :v, written_hash = :h, written_at = :t, salesforce_id = :sf, deleted = :d"
        if notification_id:
            kept_ids = settled_notifications_after(settled or {}, notification_id, _now_ms())
            values[":n"] = {"M": {nid: {"N": str(ms)} for nid, ms in kept_ids.items()}}
            sets += ", settled = :n"
        if recheck:
            values[":r"] = {"BOOL": True}
            sets += ", recheck = :r"
        if doubt_until_ms is not None:
            values[":du"] = {"N": str(doubt_until_ms)}
            sets += ", doubt_until = :du, doubt_hash = :h"
        removed = "lease_owner, lease_until, lease_version, lease_hash" + ("" if recheck else ", recheck")
        for n, (field, value) in enumerate(sorted((kept or {}).items())):
            names[f"#k{n}"] = KEPT_PREFIX + field
            values[f":k{n}"] = {"NULL": True} if value is None else {"S": value}
            sets += f", #k{n} = :k{n}"
        extra: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
        landed = conditional_write(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": record_key}},
                UpdateExpression=f"{sets} REMOVE {removed}",
                ConditionExpression="lease_owner = :o",
                ExpressionAttributeValues=values,
                **extra,
            ),
            StateUnavailableError,
            f"could not commit {record_key}",
        )
        return landed is not None

    def release(self, record_key: str, *, owner: str) -> None:
        """Drop our lease without recording a write; a lease already gone is fine (it expired)."""
        conditional_write(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": record_key}},
                UpdateExpression="REMOVE lease_owner, lease_until, lease_version, lease_hash",
                ConditionExpression="lease_owner = :o",
                ExpressionAttributeValues={":o": {"S": owner}},
            ),
            StateUnavailableError,
            f"could not release {record_key}",
        )

    def release_in_doubt(self, record_key: str, content_hash: str, *, owner: str, until_ms: int) -> None:
        """Drop our lease but close the record to every other change until ``until_ms`` (see the module's doc)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": record_key}},
                UpdateExpression=(
                    "SET doubt_until = :u, doubt_hash = :h REMOVE lease_owner, lease_until, lease_version, lease_hash"
                ),
                ConditionExpression="lease_owner = :o",
                ExpressionAttributeValues={":o": {"S": owner}, ":u": {"N": str(until_ms)}, ":h": {"S": content_hash}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StateUnavailableError(f"could not release {record_key}") from exc
        except BotoCoreError as exc:
            raise StateUnavailableError(f"could not release {record_key}") from exc

    def clear_recheck(self, record_key: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": record_key}},
                UpdateExpression="REMOVE recheck",
                ConditionExpression="attribute_exists(recheck)",  # else an absent record would be created
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StateUnavailableError(f"could not clear {record_key}'s recheck") from exc
        except BotoCoreError as exc:
            raise StateUnavailableError(f"could not clear {record_key}'s recheck") from exc

    def forget(self, record_key: str) -> dict[str, Any] | None:
        """Delete the record's version state (written version and hash, tombstone, kept values, parked version), for
        the day something wrong got in: the next change of the record is then written whatever its date. Returns
        the item as it was (None: there was none). Raises RecordLeasedError while a sync holds the record's lease
        (its commit would otherwise recreate a state from a write in flight)."""
        response = conditional_write(
            lambda: self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": record_key}},
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
                ExpressionAttributeValues={":now": {"N": str(_now_ms())}},
                ReturnValues="ALL_OLD",
            ),
            StateUnavailableError,
            f"could not forget {record_key}",
        )
        if response is None:
            raise RecordLeasedError(f"{record_key} is being written right now; try again in a minute")
        old = response.get("Attributes")
        return dict(old) if old else None

    def kept_values(self, record_keys: Collection[str]) -> dict[str, dict[str, str | None]]:
        """The kept fields of each record that has any: record key -> {field: value or None (known empty)}."""
        keys = sorted(set(record_keys))
        found: dict[str, dict[str, str | None]] = {}
        for start in range(0, len(keys), _BATCH_GET_MAX):
            for item in self._batch_get(keys[start : start + _BATCH_GET_MAX]):
                kept = {
                    name.removeprefix(KEPT_PREFIX): value.get("S")
                    for name, value in item.items()
                    if name.startswith(KEPT_PREFIX)
                }
                if kept:
                    found[item["pk"]["S"]] = kept
        return found

    def salesforce_ids(self, record_keys: Collection[str]) -> dict[str, str]:
        """The Salesforce Id kept for each record that has one (a delete finds its record by it)."""
        keys = sorted(set(record_keys))
        found: dict[str, str] = {}
        for start in range(0, len(keys), _BATCH_GET_MAX):
            for item in self._batch_get(keys[start : start + _BATCH_GET_MAX]):
                salesforce_id = item.get("salesforce_id", {}).get("S")
                if salesforce_id:
                    found[item["pk"]["S"]] = salesforce_id
        return found

    def settled_versions(self, record_keys: Collection[str]) -> dict[str, str]:
        """The newer of the version last written and the version last parked, per record that has either
        (a sweep queues only what is newer). A record marked ``recheck`` is left out: unsettled, whatever its
        dates, so the next sweep reads it again."""
        keys = sorted(set(record_keys))
        found: dict[str, str] = {}
        for start in range(0, len(keys), _BATCH_GET_MAX):
            for item in self._batch_get(keys[start : start + _BATCH_GET_MAX]):
                if item.get("recheck", {}).get("BOOL"):
                    continue
                versions = [item.get(name, {}).get("S") for name in ("written_version", "parked_version")]
                if known := [v for v in versions if v]:
                    found[item["pk"]["S"]] = max(known)
        return found

    def mark_parked(self, record_key: str, version: str) -> None:
        """Remember that ``version`` is on the failure list, unless a newer one already is."""
        conditional_write(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": record_key}},
                UpdateExpression="SET parked_version = :v",
                ConditionExpression="attribute_not_exists(parked_version) OR parked_version < :v",
                ExpressionAttributeValues={":v": {"S": version}},
            ),
            StateUnavailableError,
            f"could not mark {record_key} parked",
        )

    def _batch_get(self, keys: list[str]) -> list[dict[str, Any]]:
        request: Any = {self._table: {"Keys": [{"pk": {"S": k}} for k in keys], "ConsistentRead": True}}
        items: list[dict[str, Any]] = []
        for attempt in range(_BATCH_GET_TRIES):
            try:
                response = self._client.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as exc:
                raise StateUnavailableError("could not read the state items") from exc
            items += response.get("Responses", {}).get(self._table, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(0.05 * 2**attempt)  # DynamoDB returns unprocessed keys under throttling: back off
        raise StateUnavailableError("could not read the state items: keys left unprocessed")

    def written_record_ids(self, object_type: str) -> set[str]:
        """``WrittenRecords``: the records of ``object_type`` whose last written version is in Salesforce.

        A Scan of the table (it has no index by object type), run by the lost-deletes sweep on its slow schedule:
        it reads every item once (about 1 read unit per 4 KB, eventually consistent: half that)."""
        prefix = f"{object_type}#"
        found: set[str] = set()
        request: dict[str, Any] = {
            "TableName": self._table,
            "ProjectionExpression": "pk",
            "FilterExpression": "begins_with(pk, :p) AND attribute_type(salesforce_id, :s)"
            " AND (attribute_not_exists(deleted) OR deleted = :f)",
            "ExpressionAttributeValues": {":p": {"S": prefix}, ":s": {"S": "S"}, ":f": {"BOOL": False}},
        }
        while True:
            try:
                response = self._client.scan(**request)
            except (ClientError, BotoCoreError) as exc:
                raise StateUnavailableError(f"could not list the written {object_type} records") from exc
            found.update(item["pk"]["S"].removeprefix(prefix) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def written_version(self, record_key: str) -> str | None:
        """The version last written for a record (an operator's ``nrtsync forget`` shows it)."""
        item = self._read(record_key)
        return item.get("written_version", {}).get("S") if item else None

    def api_usage(self) -> ApiUsage | None:
        return self._usage.api_usage()

    def save_api_usage(self, usage: ApiUsage) -> None:
        self._usage.save_api_usage(usage)

    def _read(self, key: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StateUnavailableError(f"could not read {key}") from exc
        return dict(response["Item"]) if "Item" in response else None


def settled_notifications_after(settled: Mapping[str, int], notification_id: str, now_ms: int) -> dict[str, int]:
    """The record's settled notification ids once ``notification_id`` is settled at ``now_ms``: those settled within
    the callout queue's retention (``SETTLED_NOTIFICATION_RETENTION_MS``, 14 days: after it no retry of them is
    left on the queue) and at most ``SETTLED_NOTIFICATIONS_MAX`` of them, the newest kept."""
    recent = {nid: ms for nid, ms in settled.items() if ms >= now_ms - SETTLED_NOTIFICATION_RETENTION_MS}
    recent[notification_id] = now_ms
    newest = sorted(recent.items(), key=lambda item: item[1], reverse=True)[:SETTLED_NOTIFICATIONS_MAX]
    return dict(newest)


def settled_of(item: Mapping[str, Any]) -> dict[str, int]:
    """The settled notification ids of a state item (id -> epoch ms)."""
    stored = item.get("settled", {}).get("M", {})
    return {nid: int(value["N"]) for nid, value in stored.items() if "N" in value}


def _why_not(old: dict[str, Any] | None, version: str, content_hash: str, notification_id: str | None = None) -> Claim:
    """Why a claim's condition failed, from the item as it was (``claim``'s condition, read back)."""
    if not old:
        return Claim(ClaimStatus.BUSY)  # raced with a writer that has since cleaned up: try again shortly
    written_version = old.get("written_version", {}).get("S")
    # The same content written, or Zuora's retry of a change already settled (whatever its receive time made of
    # its version).
    if old.get("written_hash", {}).get("S") == content_hash or (notification_id and notification_id in settled_of(old)):
        return Claim(ClaimStatus.DUPLICATE, written_version)
    if written_version is not None and written_version >= version:
        return Claim(ClaimStatus.STALE, written_version)
    lease_version = old.get("lease_version", {}).get("S")
    if old.get("lease_hash", {}).get("S") == content_hash:
        return Claim(ClaimStatus.DUPLICATE, written_version)  # another invocation is writing this very change
    if lease_version is not None and lease_version > version:
        return Claim(ClaimStatus.STALE, written_version)  # a newer version is being written right now
    lease_until = old.get("lease_until", {}).get("N")
    until = int(lease_until) if lease_until else None
    doubt_until = old.get("doubt_until", {}).get("N")
    if doubt_until and old.get("doubt_hash", {}).get("S") != content_hash:
        # A write in doubt may still commit: another change waits until Salesforce has surely ended it.
        until = max(until or 0, int(doubt_until))
    return Claim(ClaimStatus.BUSY, written_version, until)
