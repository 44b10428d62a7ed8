"""In-memory stand-ins for a backfill's ports (``nrtsync.ports.backfill``): its store, and the pacer that stands
for the three things a backfill gives way to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from nrtsync.ports.backfill import BackfillExistsError, BackfillRun
from nrtsync.ports.breaker import BreakerReason, BreakerState
from nrtsync.ports.salesforce import ApiUsage

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class MemoryBackfillStore:
    items: dict[str, BackfillRun] = field(default_factory=dict)
    saves: int = 0

    def create(self, run: BackfillRun) -> None:
        if run.run_id in self.items:
            raise BackfillExistsError(run.run_id)
        self.items[run.run_id] = run

    def load(self, run_id: str) -> BackfillRun | None:
        return self.items.get(run_id)

    def save(self, run: BackfillRun) -> None:
        self.saves += 1
        self.items[run.run_id] = run

    def runs(self) -> list[BackfillRun]:
        return sorted(self.items.values(), key=lambda r: r.created_at, reverse=True)


@dataclass
class Pacer:
    """The three things a backfill gives way to: the queue's backlog, the API usage, the breaker."""

    queue_backlog: int = 0
    usage: ApiUsage | None = None
    breaker_open: bool = False
    reads: int = 0

    def backlog(self) -> int:
        self.reads += 1
        return self.queue_backlog

    def api_usage(self) -> ApiUsage | None:
        return self.usage

    def read(self) -> BreakerState:
        if self.breaker_open:
            return BreakerState(is_open=True, reason=BreakerReason.MANUAL, message="paused", by="operator:test")
        return BreakerState(is_open=False)
