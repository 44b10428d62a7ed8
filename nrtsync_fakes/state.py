"""In-memory stand-ins for the state table's ports (``nrtsync.ports.state``, ``SettledVersions``).

* ``InMemoryVersionStore``: the conditional claim (nothing newer or identical written, no live lease of another
  owner), conditional commit and release (only by the lease owner), with the same item shape and the same
  "why not" decision (``nrtsync.adapters.aws.state._why_not``) as ``DynamoVersionStore``; the benchmark uses it
  to measure our code rather than moto.
* ``MemoryVersions``: the versions a sweep reads to skip what Salesforce already holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from nrtsync.adapters.aws.state import _why_not, settled_notifications_after, settled_of
from nrtsync.adapters.aws.tables import KEPT_PREFIX
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
        now_ms = int(time.time() * 1000)
        with self._lock:
            self.calls += 1
            item = self._items.get(record_key)
            written_version = item.get("written_version", {}).get("S") if item else None
            written_hash = item.get("written_hash", {}).get("S") if item else None
            lease_until = item.get("lease_until", {}).get("N") if item else None
            doubt_until = item.get("doubt_until", {}).get("N") if item else None
            doubt_hash = item.get("doubt_hash", {}).get("S") if item else None
            if (
                (written_version is None or written_version < version)
                and (written_hash is None or written_hash != content_hash)
                and (lease_until is None or int(lease_until) < now_ms)
                and (doubt_until is None or int(doubt_until) < now_ms or doubt_hash == content_hash)
                and not (notification_id and item and notification_id in settled_of(item))
            ):
                updated = dict(item or {"pk": {"S": record_key}})
                updated |= {
                    "lease_owner": {"S": owner},
                    "lease_until": {"N": str(lease_until_ms)},
                    "lease_version": {"S": version},
                    "lease_hash": {"S": content_hash},
                }
                self._items[record_key] = updated
                return Claim(ClaimStatus.CLAIMED, written_version, settled=settled_of(item or {}))
            return _why_not(dict(item) if item else None, version, content_hash, notification_id)

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
        with self._lock:
            self.calls += 1
            item = self._items.get(record_key)
            if item is None or item.get("lease_owner", {}).get("S") != owner:
                return False
            updated = {k: v for k, v in item.items() if k not in (*_LEASE_FIELDS, "recheck")}
            if recheck:
                updated["recheck"] = {"BOOL": "true"}
            if doubt_until_ms is not None:
                updated |= {"doubt_until": {"N": str(doubt_until_ms)}, "doubt_hash": {"S": content_hash}}
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
            if notification_id:
                kept_ids = settled_notifications_after(settled or {}, notification_id, int(time.time() * 1000))
                updated["settled"] = {"M": {nid: {"N": str(ms)} for nid, ms in kept_ids.items()}}  # type: ignore[dict-item]
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

    def written_record_ids(self, object_type: str) -> set[str]:
        """``WrittenRecords``: as DynamoVersionStore's scan, over the dict."""
        prefix = f"{object_type}#"
        with self._lock:
            self.calls += 1
            return {
                key.removeprefix(prefix)
                for key, item in self._items.items()
                if key.startswith(prefix)
                and item.get("salesforce_id", {}).get("S")
                and item.get("deleted", {}).get("BOOL") != "true"
            }

    def release(self, record_key: str, *, owner: str) -> None:
        with self._lock:
            self.calls += 1
            item = self._items.get(record_key)
            if item is not None and item.get("lease_owner", {}).get("S") == owner:
                self._items[record_key] = {k: v for k, v in item.items() if k not in _LEASE_FIELDS}

    def release_in_doubt(self, record_key: str, content_hash: str, *, owner: str, until_ms: int) -> None:
        with self._lock:
            self.calls += 1
            item = self._items.get(record_key)
            if item is not None and item.get("lease_owner", {}).get("S") == owner:
                updated = {k: v for k, v in item.items() if k not in _LEASE_FIELDS}
                updated |= {"doubt_until": {"N": str(until_ms)}, "doubt_hash": {"S": content_hash}}
                self._items[record_key] = updated

    def clear_recheck(self, record_key: str) -> None:
        with self._lock:
            self.calls += 1
            if record_key in self._items:
                self._items[record_key].pop("recheck", None)

    def mark_parked(self, record_key: str, version: str) -> None:
        with self._lock:
            self.calls += 1
            item = self._items.setdefault(record_key, {"pk": {"S": record_key}})
            if item.get("parked_version", {}).get("S", "") < version:
                item["parked_version"] = {"S": version}

    def settled_versions(self, record_keys: Collection[str]) -> dict[str, str]:
        """The newer of the version last written and the version last parked, per record that has either."""
        with self._lock:
            self.calls += 1
            found: dict[str, str] = {}
            for key in set(record_keys):
                item = self._items.get(key, {})
                if "recheck" in item:
                    continue
                if known := [v for name in ("written_version", "parked_version") if (v := item.get(name, {}).get("S"))]:
                    found[key] = max(known)
            return found

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


@dataclass
class MemoryVersions:
    versions: dict[str, str] = field(default_factory=dict)
    reads: int = 0

    def settled_versions(self, record_keys: Collection[str]) -> dict[str, str]:
        self.reads += 1
        return {k: self.versions[k] for k in record_keys if k in self.versions}
