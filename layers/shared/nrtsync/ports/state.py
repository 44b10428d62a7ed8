"""The state table's contract: each record's newest version, claimed before a write and committed after it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
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
    settled: Mapping[str, int] = field(default_factory=dict)
    """For CLAIMED: the Zuora notification ids already settled for the record (id -> when, epoch ms), which the
    commit carries on with this change's own id; ``written_version`` is then the version written before."""


class VersionStore(ApiUsageStore, Protocol):
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
        """Take the record's lease for ``version``; DUPLICATE also when ``notification_id`` was already settled for
        the record (a retry of Zuora's, whatever its receive time made of its version)."""
        ...

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
        """Record ``version`` as written (``deleted``: as a tombstone, so an older change stays stale), and
        ``notification_id`` among the record's settled ids (``settled``: the claim's, pruned to their bound).
        ``recheck``: mark the record for the next reconcile run to read it again from Zuora (it counts as unsettled
        until then); without it, a mark is cleared. ``doubt_until_ms``: an earlier attempt of this write may still
        commit, so until then no other change may claim the record (as after ``release_in_doubt``)."""
        ...

    def clear_recheck(self, record_key: str) -> None:
        """A reconcile run's read of the record matched what was written: its recheck mark goes."""
        ...

    def release(self, record_key: str, *, owner: str) -> None: ...

    def release_in_doubt(self, record_key: str, content_hash: str, *, owner: str, until_ms: int) -> None:
        """Drop our lease after a write that may still commit in Salesforce: until ``until_ms`` only the same
        change (``content_hash``) may claim the record again (to re-send it); any other change is BUSY."""
        ...

    def mark_parked(self, record_key: str, version: str) -> None:
        """``version`` is on the failure list (an operator's job): a sweep of Zuora must not queue it again."""
        ...

    def kept_values(self, record_keys: Collection[str]) -> dict[str, dict[str, str | None]]: ...

    def salesforce_ids(self, record_keys: Collection[str]) -> dict[str, str]:
        """The Salesforce Id last written for each record that has one (record key -> Id)."""
        ...
