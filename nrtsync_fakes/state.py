"""In-memory implementations of the sync service's state and history ports, and of ingest's queue and secrets.

They keep the semantics the service relies on, so that the benchmark measures our code rather than moto:

* ``InMemoryVersionStore``: the conditional claim (nothing newer or identical written, no live lease of another
  owner), conditional commit and release (only by the lease owner), with the same item shape and the same
  "why not" decision (``nrtsync.adapters.aws.state._why_not``) as ``DynamoVersionStore``.
* ``in_memory_history()``: the real ``DynamoHistoryWriter`` (item building, serialisation, chunks of 25)
  over a table that keeps the items in a dict instead of answering over HTTP.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from nrtsync.adapters.aws.history import DynamoHistoryWriter
from nrtsync.adapters.aws.state import _why_not
from nrtsync.adapters.aws.tables import KEPT_PREFIX
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.salesforce import ApiUsage
from nrtsync.ports.state import Claim, ClaimStatus

_LEASE_FIELDS = ("lease_owner", "lease_until", "lease_version", "lease_hash")


class InMemoryVersionStore:
    """``VersionStore`` with DynamoVersionStore's conditions, items in a dict behind one lock."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, dict[str, str]]] = {}
        self._usage: ApiUsage | None = None
        self._lock = threading.Lock()
        self.calls = 0

    def claim(self, record_key: str, version: str, content_hash: str, *, owner: str, lease_until_ms: int) -> Claim:
        now_ms = int(time.time() * 1000)
        with self._lock:
            self.calls += 1
            item = self._items.get(record_key)
            written_version = item.get("written_version", {}).get("S") if item else None
            written_hash = item.get("written_hash", {}).get("S") if item else None
            lease_until = item.get("lease_until", {}).get("N") if item else None
            if (
                (written_version is None or written_version < version)
                and (written_hash is None or written_hash != content_hash)
                and (lease_until is None or int(lease_until) < now_ms)
            ):
                updated = dict(item or {"pk": {"S": record_key}})
                updated |= {
                    "lease_owner": {"S": owner},
                    "lease_until": {"N": str(lease_until_ms)},
                    "lease_version": {"S": version},
                    "lease_hash": {"S": content_hash},
                }
                self._items[record_key] = updated
                return Claim(ClaimStatus.CLAIMED)
            return _why_not(dict(item) if item else None, version, content_hash)

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
    ) -> bool:
        with self._lock:
            self.calls += 1
            item = self._items.get(record_key)
            if item is None or item.get("lease_owner", {}).get("S") != owner:
                return False
            updated = {k: v for k, v in item.items() if k not in _LEASE_FIELDS}
            updated |= {
                "written_version": {"S": version},
                "written_hash": {"S": content_hash},
                "written_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%S")},
                "salesforce_id": {"S": salesforce_id} if salesforce_id else {"NULL": "true"},
                "deleted": {"BOOL": "true" if deleted else "false"},
            }
            updated |= {
                KEPT_PREFIX + name: {"S": value} if value is not None else {"NULL": "true"}
                for name, value in (kept or {}).items()
            }
            self._items[record_key] = updated
            return True

    def kept_values(self, record_keys: Collection[str]) -> dict[str, dict[str, str | None]]:
        with self._lock:
            self.calls += 1
            found: dict[str, dict[str, str | None]] = {}
            for key in set(record_keys):
                item = self._items.get(key, {})
                kept = {n.removeprefix(KEPT_PREFIX): v.get("S") for n, v in item.items() if n.startswith(KEPT_PREFIX)}
                if kept:
                    found[key] = kept
            return found

    def salesforce_ids(self, record_keys: Collection[str]) -> dict[str, str]:
        with self._lock:
            self.calls += 1
            found: dict[str, str] = {}
            for key in set(record_keys):
                salesforce_id = self._items.get(key, {}).get("salesforce_id", {}).get("S")
                if salesforce_id:
                    found[key] = salesforce_id
            return found

    def release(self, record_key: str, *, owner: str) -> None:
        with self._lock:
            self.calls += 1
            item = self._items.get(record_key)
            if item is not None and item.get("lease_owner", {}).get("S") == owner:
                self._items[record_key] = {k: v for k, v in item.items() if k not in _LEASE_FIELDS}

    def mark_parked(self, record_key: str, version: str) -> None:
        with self._lock:
            self.calls += 1
            item = self._items.setdefault(record_key, {"pk": {"S": record_key}})
            if item.get("parked_version", {}).get("S", "") < version:
                item["parked_version"] = {"S": version}

    def api_usage(self) -> ApiUsage | None:
        with self._lock:
            self.calls += 1
            return self._usage

    def save_api_usage(self, usage: ApiUsage) -> None:
        with self._lock:
            self.calls += 1
            self._usage = usage

    def written_version(self, record_key: str) -> str | None:
        item = self._items.get(record_key)
        return item.get("written_version", {}).get("S") if item else None


class InMemoryTable:
    """The one DynamoDB call the history writer makes, BatchWriteItem, into a dict (everything processed)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls = 0
        self._lock = threading.Lock()

    def batch_write_item(self, *, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            self.calls += 1
            for requests in RequestItems.values():
                for request in requests:
                    item = request["PutRequest"]["Item"]
                    self.items[(item["pk"]["S"], item["sk"]["S"])] = item
        return {"UnprocessedItems": {}}


def in_memory_history(table: InMemoryTable | None = None) -> tuple[DynamoHistoryWriter, InMemoryTable]:
    """The production history writer over an in-memory table."""
    table = table or InMemoryTable()
    return DynamoHistoryWriter("bench-history", ttl_days=30, client=table), table  # type: ignore[arg-type]


class InMemoryRetries:
    """``RetryScheduler``: records the visibility delays asked for (none on a clean batch)."""

    def __init__(self) -> None:
        self.delays: dict[str, int] = {}

    def delay(self, receipt_handles: Iterable[str], seconds: int) -> list[str]:
        for handle in receipt_handles:
            self.delays[handle] = seconds
        return []


class InMemoryQueue:
    """``ChangeQueue``: serialises the change as the SQS adapter does, and keeps the body."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self._ids = itertools.count(1)

    def send(self, change: QueuedChange) -> str:
        self.bodies.append(change.model_dump_json())
        return f"m-{next(self._ids)}"


class StaticSecrets:
    """``SecretSource`` with fixed secrets (ingest caches its secret for minutes anyway)."""

    def __init__(self, secrets: dict[str, dict[str, Any]]) -> None:
        self._secrets = secrets

    def get_json(self, secret_id: str) -> dict[str, Any]:
        return dict(self._secrets[secret_id])
