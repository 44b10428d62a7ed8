"""The sync history in DynamoDB: sessions, per-record outcomes, minute summaries and the failure list.

The keys and item shapes are in ``nrtsync.adapters.aws.tables``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.tables import (
    DYNAMODB_CONFIG,
    FAILURE_PK,
    failure_sk,
    minute_pk,
    record_pk,
    session_pk,
    session_sk,
    to_item,
)
from nrtsync.domain.outcomes import Outcome
from nrtsync.ports.history import Failure, HistoryUnavailableError, RecordOutcome, SessionSummary
from nrtsync.ports.metrics import floor_minute, minute_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_BATCH_WRITE_MAX = 25


class DynamoHistoryWriter:
    """HistoryWriter on the SyncHistoryTable."""

    def __init__(self, table_name: str, *, ttl_days: int, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._ttl = timedelta(days=ttl_days)
        self._client: DynamoDBClient = client or boto3.client("dynamodb", config=DYNAMODB_CONFIG)

    def write_session(self, session: SessionSummary, outcomes: Sequence[RecordOutcome]) -> None:
        """Write the session, every record's outcome and the minute summaries the metrics function reads."""
        expires_at = int((session.ended_at + self._ttl).timestamp())
        items: list[dict[str, Any]] = [self._session_item(session, expires_at)]
        items += [self._outcome_item(session, n, o, expires_at) for n, o in enumerate(outcomes)]
        items += self._minute_items(session, outcomes, expires_at)
        unwritten = self._batch_write(items)
        if unwritten:
            raise HistoryUnavailableError(f"{len(unwritten)} of {len(items)} history items were not written")

    def park_failures(self, failures: Sequence[Failure]) -> list[Failure]:
        """Put failures on the failure list; returns those that could not be stored (they must be retried)."""
        by_key = {failure_sk(f.object_type, f.record_id, f.version): f for f in failures}
        items = [
            {
                "pk": FAILURE_PK,
                "sk": key,
                "type": "failure",
                "object_type": f.object_type,
                "record_id": f.record_id,
                "version": f.version,
                "error_code": f.error_code,
                "error_message": f.error_message[:2_000],
                "failed_at": f.failed_at.isoformat(timespec="milliseconds"),
                "session_id": f.session_id,
                "receive_count": f.receive_count,
                "body": f.body,
            }
            for key, f in by_key.items()
        ]
        unwritten = self._batch_write(items)
        return [by_key[item["sk"]] for item in unwritten]

    @staticmethod
    def _session_item(session: SessionSummary, expires_at: int) -> dict[str, Any]:
        item = {
            "pk": session_pk(session.started_at.date()),
            "sk": session_sk(session.started_at, session.session_id),
            "type": "session",
            "ended_at": session.ended_at.isoformat(timespec="milliseconds"),
            "expires_at": expires_at,
            **session.as_log(),
        }
        return {k: v for k, v in item.items() if v is not None}

    @staticmethod
    def _outcome_item(session: SessionSummary, n: int, o: RecordOutcome, expires_at: int) -> dict[str, Any]:
        change = o.change
        item: dict[str, Any] = {
            "pk": record_pk(change.object_type, change.record_id),
            "sk": f"{o.decided_at.isoformat(timespec='milliseconds')}#{session.session_id}#{n:03d}",
            "type": "outcome",
            "object_type": change.object_type,
            "record_id": change.record_id,
            "updated_date": change.updated_date.isoformat(timespec="milliseconds"),
            "received_at": change.received_at.isoformat(timespec="milliseconds"),
            "notification_id": change.notification_id,
            # callout, reconcile or backfill: which records came back through a sweep, not a callout.
            "source": o.source,
            "status": o.outcome.value,
            "session_id": session.session_id,
            "receive_count": o.receive_count,
            "expires_at": expires_at,
        }
        if o.outcome is Outcome.WRITTEN:
            item |= {"sync_ms": o.sync_ms, "e2e_ms": o.e2e_ms}
        optional = {"salesforce_id": o.salesforce_id, "error_code": o.error_code, "error_message": o.error_message}
        item |= {k: v for k, v in optional.items() if v}
        return item

    @staticmethod
    def _minute_items(
        session: SessionSummary, outcomes: Iterable[RecordOutcome], expires_at: int
    ) -> list[dict[str, Any]]:
        groups: dict[tuple[datetime, str], dict[str, Any]] = {}
        for o in outcomes:
            key = (floor_minute(o.decided_at), o.change.object_type)
            group = groups.setdefault(
                key,
                {
                    "written": 0,
                    "failed": 0,
                    "waiting": 0,
                    "held": 0,
                    "superseded": 0,
                    "stale": 0,
                    "sync_ms": [],
                    "e2e_ms": [],
                },
            )
            if o.outcome is Outcome.WRITTEN:
                group["written"] += 1
                group["sync_ms"].append(o.sync_ms)
                group["e2e_ms"].append(o.e2e_ms)
            elif o.outcome in (Outcome.STALE, Outcome.DUPLICATE):
                group["stale"] += 1
            else:
                group[o.outcome.value] += 1
        items = []
        for (minute, object_type), group in sorted(groups.items()):
            items.append(
                {
                    "pk": minute_pk(minute),
                    "sk": f"{object_type}#{session.session_id}",
                    "type": "minute",
                    "object_type": object_type,
                    "minute": minute_key(minute),
                    "session_id": session.session_id,
                    "api_calls": session.api_calls,
                    "expires_at": expires_at,
                    **group,
                }
            )
        return items

    def _batch_write(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """BatchWriteItem in chunks of 25, retrying unprocessed items a few times; returns what never landed."""
        failed: list[dict[str, Any]] = []
        for start in range(0, len(items), _BATCH_WRITE_MAX):
            chunk = items[start : start + _BATCH_WRITE_MAX]
            pending: list[Any] = [{"PutRequest": {"Item": to_item(i)}} for i in chunk]
            for attempt in range(4):
                if attempt:
                    time.sleep(0.05 * 2**attempt)  # DynamoDB asks for backoff on unprocessed items
                try:
                    response = self._client.batch_write_item(RequestItems={self._table: pending})
                except (ClientError, BotoCoreError):
                    continue
                pending = list(response.get("UnprocessedItems", {}).get(self._table, []))
                if not pending:
                    break
            if pending:
                unprocessed_keys = {
                    (r["PutRequest"]["Item"]["pk"]["S"], r["PutRequest"]["Item"]["sk"]["S"]) for r in pending
                }
                failed += [i for i in chunk if (i["pk"], i["sk"]) in unprocessed_keys]
        return failed
