"""Changes held back from Salesforce until the billing account they belong to has its CRM link."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from nrtsync.domain.models.callout import QueuedChange


class HoldStore(Protocol):
    """Held changes, filed under the record key of the billing account they wait for."""

    def hold(self, account_key: str, change: QueuedChange) -> None:
        """Keep ``change`` (the newest version of its record wins) until ``account_key`` is released."""
        ...

    def held_accounts(self, account_keys: Collection[str]) -> set[str]:
        """Those of ``account_keys`` that have changes held."""
        ...

    def held_changes(self, account_keys: Collection[str]) -> dict[str, list[QueuedChange]]:
        """The changes held under each account (account key -> changes)."""
        ...

    def drop(self, account_key: str, change: QueuedChange) -> None:
        """Forget a held change once it is settled (written, stale, or parked); a newer one held since stays."""
        ...
