"""The reconcile function's settings."""

from __future__ import annotations

from pydantic import Field

from nrtsync.services.sweep.settings import SweepSettings


class ReconcileSettings(SweepSettings):
    """What the scheduled reconciliation needs on top of a sweep's settings (docs/ZUORA.md, "Reconciliation")."""

    # Each window starts this long before the last window's end: a record saved while the last sweep ran can
    # carry an UpdatedDate inside that window yet reach the query only later (commit time, Zuora's own clocks).
    # Reading it again is cheap: records Salesforce already has are compared in the state table, not queued.
    overlap_seconds: int = Field(alias="RECONCILE_OVERLAP_SECONDS", default=300, ge=0, le=3_600)
    # Each window ends this long before now, so a change whose callout is still on its way (Zuora sends it
    # within seconds, the sync writes it within a minute) is left to the callout rather than queued twice.
    settle_seconds: int = Field(alias="RECONCILE_SETTLE_SECONDS", default=120, ge=0, le=3_600)
    # The first run ever (no watermark) reads this far back; a whole tenant is the backfill's job.
    lookback_hours: int = Field(alias="RECONCILE_LOOKBACK_HOURS", default=24, ge=1, le=720)
    # The lost-deletes sweep (services.reconcile.lost_deletes) reads every Id of every mapped object, so it runs
    # once a day: in the scheduled runs of this UTC hour's first 15 minutes. -1: never.
    deletes_hour: int = Field(alias="RECONCILE_DELETES_HOUR", default=3, ge=-1, le=23)
