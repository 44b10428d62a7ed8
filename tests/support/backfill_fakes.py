"""In-memory stand-ins for a backfill's ports (``nrtsync.ports.backfill``), and a world that wires them with the
sweep's fakes (``tests.support.sweep_fakes``) into the backfill's services (``BackfillAdmin``, ``BackfillStep``)
on a simulated clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nrtsync.domain.mapping import MappingConfig, load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.ports.backfill import BackfillExistsError, BackfillRun
from nrtsync.ports.breaker import BreakerReason, BreakerState
from nrtsync.ports.salesforce import ApiUsage
from nrtsync.services.backfill.admin import BackfillAdmin
from nrtsync.services.backfill.step import BackfillStep, Pacing
from nrtsync.services.sweep.service import Sweep
from tests.support.sweep_fakes import MemoryCheckpoints, MemorySink, MemoryVersions, MemoryZuora

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


class BackfillWorld:
    """A backfill service over MemoryZuora, a MemorySink as the callout queue, and a clock the test moves."""

    def __init__(self, *, page_size: int = 2000, mapping: MappingConfig | None = None) -> None:
        self.mapping = mapping or load_mapping()
        self.zuora = MemoryZuora(page_size=page_size)
        self.sink = MemorySink()
        self.versions = MemoryVersions()
        self.checkpoints = MemoryCheckpoints()
        self.store = MemoryBackfillStore()
        self.pacer = Pacer()
        self.now = NOW
        self.monotonic_now = 0.0
        self.seconds_per_page = 0.0
        """Simulated time each page takes (a deadline then comes after so many pages)."""
        self.admin = BackfillAdmin(
            store=self.store, mapping=self.mapping, checkpoints=self.checkpoints, clock=lambda: self.now
        )
        self.service = BackfillStep(
            store=self.store,
            sweeps=self._sweep,
            checkpoints=self.checkpoints,
            backlog=self.pacer,
            api_usage=self.pacer,
            breaker=self.pacer,
            pacing=Pacing(
                max_backlog=2_000, max_api_percent=80.0, wait_seconds=45, usage_max_age=timedelta(minutes=30)
            ),
            clock=lambda: self.now,
        )

    def _tick(self) -> float:
        return self.monotonic_now

    def _sweep(self, name: str) -> Sweep:
        return Sweep(
            name,
            zuora=self.zuora,
            mapping=self.mapping,
            versions=self.versions,
            sink=self._timed_sink(),
            checkpoints=self.checkpoints,
            source="backfill",
            clock=lambda: self.now,
            monotonic=self._tick,
        )

    def _timed_sink(self) -> _TimedSink:
        return _TimedSink(self)

    def advance(self, seconds: float) -> None:
        self.monotonic_now += seconds
        self.now += timedelta(seconds=seconds)


@dataclass
class _TimedSink:
    world: BackfillWorld

    def send_batch(self, changes: Sequence[QueuedChange]) -> None:
        self.world.sink.send_batch(changes)
        self.world.advance(self.world.seconds_per_page)
