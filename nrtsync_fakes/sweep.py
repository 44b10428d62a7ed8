"""An in-memory store of a sweep's checkpoints and watermarks (``nrtsync.ports.sweep.SweepCheckpoints``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from nrtsync.ports.sweep import SweepCursor


@dataclass
class MemoryCheckpoints:
    cursors: dict[tuple[str, str], SweepCursor] = field(default_factory=dict)
    watermarks: dict[tuple[str, str], datetime] = field(default_factory=dict)
    saves: int = 0

    def load(self, sweep: str, object_type: str) -> SweepCursor | None:
        return self.cursors.get((sweep, object_type))

    def save(self, sweep: str, cursor: SweepCursor) -> None:
        self.saves += 1
        self.cursors[(sweep, cursor.object_type)] = cursor

    def finish(self, sweep: str, cursor: SweepCursor) -> None:
        self.cursors.pop((sweep, cursor.object_type), None)
        self.watermarks[(sweep, cursor.object_type)] = cursor.until

    def watermark(self, sweep: str, object_type: str) -> datetime | None:
        return self.watermarks.get((sweep, object_type))
