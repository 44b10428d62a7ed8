"""The state table's contract: each record's newest version, claimed before a write and committed after it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from nrtsync.ports.api_usage import ApiUsageStore


class StateUnavailableError(RuntimeError):
    """The state table could not be read or written (retryable)."""


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"
    DUPLICATE = "duplicate"
    STALE = "stale"
    BUSY = "busy"


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    written_version: str | None = None
    lease_until_ms: int | None = None
    """For BUSY: when the other writer's lease expires (a retry before then is wasted)."""


class VersionStore(ApiUsageStore, Protocol):
    def claim(self, record_key: str, version: str, content_hash: str, *, owner: str, lease_until_ms: int) -> Claim: ...

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
        """Record ``version`` as written (``deleted``: as a tombstone, so an older change stays stale)."""
        ...

    def release(self, record_key: str, *, owner: str) -> None: ...

    def mark_parked(self, record_key: str, version: str) -> None:
        """``version`` is on the failure list (an operator's job): a sweep of Zuora must not queue it again."""
        ...

    def kept_values(self, record_keys: Collection[str]) -> dict[str, dict[str, str | None]]: ...

    def salesforce_ids(self, record_keys: Collection[str]) -> dict[str, str]:
        """The Salesforce Id last written for each record that has one (record key -> Id)."""
        ...
