"""Reconciliation: on a schedule, sweep every mapped object's recently updated Zuora records and queue the changes
Salesforce lacks, i.e. the ones whose callouts were lost or refused (docs/ZUORA.md, "Reconciliation").

Per object, parents first (``mapping.write_order()``), the window is ``[watermark - overlap, now - settle)``; the
first run ever, with no watermark, reads ``lookback`` back (a whole tenant is the backfill's job). A sweep already
in progress keeps its own saved window (``services.sweep``), so a run cut short resumes where it stopped.

A run stops early, leaving the rest to the next run, when the invocation's time runs out or when the circuit
breaker is open: Salesforce is paused then, the queue only grows, and the watermark that stays put makes the
next run after the pause cover the gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nrtsync.domain.models.zuora import ZuoraAuthError, ZuoraError, ZuoraRetryableError
from nrtsync.ports.breaker import BreakerUnavailableError
from nrtsync.ports.queue import QueueUnavailableError
from nrtsync.ports.state import StateUnavailableError

if TYPE_CHECKING:
    from nrtsync.domain.mapping import MappingConfig
    from nrtsync.ports.breaker import BreakerReader
    from nrtsync.ports.sweep import SweepCheckpoints
    from nrtsync.services.reconcile.lost_deletes import LostDeletes, LostDeletesReport
    from nrtsync.services.sweep.service import Sweep, SweepOutcome

RECONCILE_SWEEP = "reconcile"
BREAKER_OPEN = "breaker open"
NOT_REACHED = "not reached"
# Kept back from the invocation's remaining time: the run's report and the handler's return must fit after it.
END_RESERVE_S = 5.0


@dataclass(frozen=True)
class ReconcileWindows:
    """How the next window of an object is chosen (``ReconcileSettings``)."""

    overlap: timedelta = timedelta(minutes=5)
    settle: timedelta = timedelta(minutes=2)
    lookback: timedelta = timedelta(hours=24)


@dataclass
class ObjectReport:
    """What one run did for one object."""

    object_type: str
    since: datetime | None = None
    until: datetime | None = None
    finished: bool = False
    stopped_by: str | None = None
    """``deadline``, ``breaker open``, ``not reached`` (an earlier object used the run), or ``error``."""
    pages: int = 0
    read: int = 0
    queued: int = 0
    malformed: int = 0
    malformed_ids: list[str] = field(default_factory=list)
    """The first unreadable records' Zuora ids (their reasons quote field values, so they are not logged)."""
    watermark: datetime | None = None
    """The end of the last window read to its end, after this run."""
    error: str | None = None

    def as_log(self, now: datetime) -> dict[str, Any]:
        return {
            "object_type": self.object_type,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "finished": self.finished,
            "stopped_by": self.stopped_by,
            "pages": self.pages,
            "read": self.read,
            "queued": self.queued,
            "malformed": self.malformed,
            "malformed_ids": self.malformed_ids,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "watermark_lag_s": watermark_lag_seconds(self.watermark, now),
            "error": self.error,
        }


def watermark_lag_seconds(watermark: datetime | None, now: datetime) -> int | None:
    return None if watermark is None else max(0, int((now - watermark).total_seconds()))


@dataclass
class ReconcileResult:
    started_at: datetime
    objects: list[ObjectReport] = field(default_factory=list)
    deletes: list[LostDeletesReport] | None = None
    """The lost-deletes sweep's reports, when this run included it (``run(deletes=True)``)."""
    deletes_error: str | None = None

    @property
    def deletes_queued(self) -> int:
        """Deletes queued for records Zuora no longer has (their delete callouts were lost)."""
        return sum(d.queued for d in self.deletes or [])

    @property
    def queued(self) -> int:
        """Changes queued by this run: each one a change whose callout never reached us."""
        return sum(o.queued for o in self.objects)

    @property
    def read(self) -> int:
        return sum(o.read for o in self.objects)

    @property
    def malformed(self) -> int:
        return sum(o.malformed for o in self.objects)

    @property
    def errors(self) -> list[ObjectReport]:
        return [o for o in self.objects if o.error is not None]

    def watermark_lag_seconds(self) -> int | None:
        """How far the oldest watermark is behind the run's start; None before any object finished a window."""
        lags = [watermark_lag_seconds(o.watermark, self.started_at) for o in self.objects]
        known = [lag for lag in lags if lag is not None]
        return max(known) if len(known) == len(lags) and known else None

    def raise_for_errors(self) -> None:
        """Fails the invocation (after it was reported) when an object's sweep failed, so Lambda counts an error."""
        failed = [f"{o.object_type}: {o.error}" for o in self.errors]
        if self.deletes_error is not None:
            failed.append(f"lost deletes: {self.deletes_error}")
        if failed:
            raise ReconcileError("; ".join(failed))

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "objects": len(self.objects),
            "finished": sum(o.finished for o in self.objects),
            "read": self.read,
            "queued": self.queued,
            "malformed": self.malformed,
            "errors": len(self.errors),
            "watermark_lag_s": self.watermark_lag_seconds(),
            "deletes_queued": self.deletes_queued if self.deletes is not None else None,
        }


class ReconcileError(RuntimeError):
    """An object's sweep failed; the run reported it and fails so Lambda counts an error (the alarm)."""


class Reconciler:
    """One reconciliation run over every mapped object."""

    def __init__(
        self,
        *,
        sweep: Sweep,
        checkpoints: SweepCheckpoints,
        breaker: BreakerReader,
        mapping: MappingConfig,
        windows: ReconcileWindows,
        lost_deletes: LostDeletes | None = None,
        deletes_hour: int = -1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sweep = sweep
        self._lost_deletes = lost_deletes
        self._deletes_hour = deletes_hour
        self._checkpoints = checkpoints
        self._breaker = breaker
        self._mapping = mapping
        self._windows = windows
        self._clock = clock

    def includes_deletes(self, scheduled_at: datetime) -> bool:
        """Whether the run scheduled at ``scheduled_at`` also runs the lost-deletes sweep: once a day, in the runs
        of the first 15 minutes of ``deletes_hour`` (UTC; -1: never), because it reads every Id Zuora has."""
        at = scheduled_at.astimezone(UTC)
        return self._lost_deletes is not None and at.hour == self._deletes_hour and at.minute < 15

    def window(self, object_type: str, now: datetime) -> tuple[datetime, datetime]:
        """The window a new sweep of ``object_type`` reads (a sweep in progress keeps its saved one)."""
        watermark = self._checkpoints.watermark(self._sweep.name, object_type)
        since = now - self._windows.lookback if watermark is None else watermark - self._windows.overlap
        return since, now - self._windows.settle

    def run(self, *, deadline: float, deletes: bool = False) -> ReconcileResult:
        """Sweeps each mapped object, parents first, until done, out of time (``deadline``, a ``time.monotonic()``
        value, less a reserve for reporting) or the breaker opens; with ``deletes``, then the lost-deletes sweep
        (``services.reconcile.lost_deletes``) in the time left."""
        now = self._clock()
        deadline -= END_RESERVE_S
        result = ReconcileResult(started_at=now)
        stop: str | None = None
        for object_type in self._mapping.write_order():
            report = ObjectReport(object_type=object_type)
            result.objects.append(report)
            if stop is not None:
                report.stopped_by = NOT_REACHED
            else:
                stop = self._sweep_object(report, now, deadline)
            report.watermark = self._checkpoints.watermark(self._sweep.name, object_type)
        if deletes and self._lost_deletes is not None and stop is None:
            try:
                result.deletes = self._lost_deletes.run(deadline=deadline)
            except (ZuoraError, QueueUnavailableError, StateUnavailableError) as exc:
                result.deletes, result.deletes_error = [], f"{type(exc).__name__}: {exc}"
        return result

    def _sweep_object(self, report: ObjectReport, now: datetime, deadline: float) -> str | None:
        """Fills ``report``; returns why the whole run must stop, or None to go on with the next object."""
        since, until = self.window(report.object_type, now)
        if until <= since:
            # The settle time has not passed since the last window ended: nothing new to read yet.
            report.finished = True
            return None
        start = self._sweep.cursor(report.object_type, since, until)
        try:
            outcome = self._sweep.run(
                report.object_type, since, until, deadline=deadline, should_stop=self._breaker_open
            )
        except (
            ZuoraRetryableError,
            ZuoraAuthError,
            QueueUnavailableError,
            StateUnavailableError,
            BreakerUnavailableError,
        ) as exc:
            # Zuora's rate limit or an outage, its credentials, our queue or table: every object would fail the same.
            report.stopped_by, report.error = "error", f"{type(exc).__name__}: {exc}"
            return "error"
        except ZuoraError as exc:
            # A request Zuora refuses for this object (a mapped field it lacks): the next objects can still run.
            report.stopped_by, report.error = "error", f"{type(exc).__name__}: {exc}"
            return None
        self._fill(report, outcome)
        # The cursor counts every unreadable record of the window; this run's share is what it added.
        report.malformed = outcome.cursor.malformed - start.malformed
        return outcome.stopped_by

    def _breaker_open(self) -> str | None:
        return BREAKER_OPEN if self._breaker.read().is_open else None

    @staticmethod
    def _fill(report: ObjectReport, outcome: SweepOutcome) -> None:
        report.since, report.until = outcome.cursor.since, outcome.cursor.until
        report.finished, report.stopped_by = outcome.finished, outcome.stopped_by
        report.pages, report.read, report.queued = outcome.pages, outcome.read, outcome.queued
        report.malformed_ids = [m.record_id or "(no Id)" for m in outcome.malformed]
