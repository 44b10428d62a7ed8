"""An in-memory stand-in for the hold store (``nrtsync.ports.holds.HoldStore``), with ``DynamoHoldStore``'s rules: one
entry per record under its account, the newest version wins, a drop removes only the version it names."""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field

from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.state import StateUnavailableError


@dataclass
class MemoryHoldStore:
    """``HoldStore`` in a dict; ``failing_reads`` makes the next reads fail (as the state table throttled or down),
    ``failing`` every call."""

    held: dict[str, dict[str, QueuedChange]] = field(default_factory=dict)  # account key -> record key -> change
    failing: bool = False
    failing_reads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hold(self, account_key: str, change: QueuedChange) -> None:
        with self._lock:
            self._check()
            records = self.held.setdefault(account_key, {})
            before = records.get(change.record_key)
            if before is None or before.version < change.version:
                records[change.record_key] = change

    def held_accounts(self, account_keys: Collection[str]) -> set[str]:
        return set(self.held_changes(account_keys))

    def held_changes(self, account_keys: Collection[str]) -> dict[str, list[QueuedChange]]:
        with self._lock:
            self._check()
            if self.failing_reads:
                self.failing_reads -= 1
                raise StateUnavailableError("could not read the held changes")
            return {key: list(self.held[key].values()) for key in set(account_keys) if self.held.get(key)}

    def drop(self, account_key: str, change: QueuedChange) -> None:
        with self._lock:
            self._check()
            records = self.held.get(account_key, {})
            kept = records.get(change.record_key)
            if kept is not None and kept.version == change.version:
                del records[change.record_key]

    def _check(self) -> None:
        if self.failing:
            raise StateUnavailableError("the state table is unavailable")
