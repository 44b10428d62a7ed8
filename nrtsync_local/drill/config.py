"""The fault drill's knobs, read by every part of the drill (so that no part imports the drill's run)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DrillConfig:
    """The drill's knobs. The defaults are the short drill; ``changes`` scales it into a soak."""

    changes: int = 1_000
    records: int = 250
    rate_per_second: float = 14.0
    http_share: float = 0.35
    """Part of the changes sent over HTTP through the API Gateway front (ingest); the rest go onto the queue."""
    redeliver_share: float = 0.06
    reorder_share: float = 0.06
    seed: int = 20_260_501
    sync_timeout_seconds: int = 10
    """The sync function's timeout for the drill (template: 60): a killed invocation's leases last this + 60 s."""
    visibility_timeout_seconds: int = 10
    """The callout queue's visibility timeout for the drill (template: 360): how soon a killed batch comes back."""
    retry_delay_seconds: int = 1
    api_recheck_seconds: int = 2
    batch_window_seconds: float = 1.0
    cycle_seconds: float = 100.0
    """The fault schedule repeats every cycle while changes are being sent (one cycle in the short drill)."""
    max_queue_depth: int = 200
    """Generation pauses while more messages than this are visible (moto's SQS slows with depth)."""
    drain_timeout_seconds: float = 120.0
    quarantine_lead_seconds: float = 4.0
    """New changes to records a killed invocation still leases wait until this long before the lease ends."""
