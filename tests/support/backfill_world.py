"""A world that wires the backfill's and the sweep's fakes into the backfill's services (``BackfillAdmin``,
``BackfillStep``) on a simulated clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nrtsync.domain.mapping import MappingConfig, load_mapping
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.services.backfill.admin import BackfillAdmin
from nrtsync.services.backfill.step import BackfillStep, Pacing
from nrtsync.services.sweep.service import Sweep
from nrtsync_fakes.backfill import MemoryBackfillStore, Pacer
from nrtsync_fakes.queue import MemorySink
from nrtsync_fakes.state import MemoryVersions
from nrtsync_fakes.sweep import MemoryCheckpoints
from nrtsync_fakes.zuora import MemoryZuora

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


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
