"""A backfill: the initial load of a tenant, or a replay of a time range, through the callout queue.

A run reads every record of its objects whose ``UpdatedDate`` is in ``[since, until)`` with the sweep engine
(``services.sweep``, named ``backfill-<run_id>``) and queues the changes Salesforce lacks, where the sync function
takes them as it takes callouts. The rules here:

- Objects run one after another in the mapping's write order, parents before children: an object starts only
  when the objects before it are read to their end, so a child's change never reaches the queue before its
  parent's (the sync would have to wait for the parent).
- ``until`` is fixed when the run is created and ``since``/``until`` are stored with it: a resumed run reads the
  very windows it started, whatever the clock says then.
- ``step`` does as much as one invocation can before its deadline and says what to do next: ``running`` (call
  again), ``waiting`` (call again after ``wait_seconds``), ``done``, ``failed``. The sweep checkpoints every page,
  so a step that ends anywhere, even by a crash, loses at most a page that is then queued twice (the sync drops
  the copy as a duplicate).
- Pacing, so that live callouts are not starved: before every page the run pauses (``waiting``) while the
  callout queue holds more than ``max_backlog`` messages, while the org's API usage is at or above
  ``max_api_percent`` (below the sync's own budget stop), or while the circuit breaker is open.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from nrtsync.domain.models.zuora import ZuoraAuthError, ZuoraRequestError, ZuoraRetryableError
from nrtsync.ports.backfill import BackfillRun, BackfillStatus, ObjectProgress
from nrtsync.ports.queue import QueueUnavailableError
from nrtsync.ports.secrets import SecretInvalidError, SecretUnavailableError
from nrtsync.ports.state import StateUnavailableError

if TYPE_CHECKING:
    from nrtsync.domain.mapping import MappingConfig
    from nrtsync.ports.api_usage import ApiUsageReader
    from nrtsync.ports.backfill import BackfillStore, QueueBacklog
    from nrtsync.ports.breaker import BreakerReader
    from nrtsync.ports.sweep import SweepCheckpoints, SweepCursor
    from nrtsync.services.sweep.service import Sweep

ZUORA_EPOCH: Final = datetime(2006, 1, 1, tzinfo=UTC)
"""The default ``since``: before Zuora's founding, so a run without one reads a whole tenant."""


class BackfillRequestError(ValueError):
    """A run that cannot be: an unknown object, a window that is empty or in the future. Names the option."""


class BackfillNotFoundError(LookupError):
    """No run has that id."""


@dataclass(frozen=True)
class Pacing:
    """The bounds that pause a backfill (``BackfillSettings``; docs/ZUORA.md, "Initial load and replay")."""

    max_backlog: int = 2_000
    """Callout queue messages: 10 full sync batches of 200, so a live callout waits behind at most that."""
    max_api_percent: float = 80.0
    """Below the sync's ``ApiUsageBudgetPercent`` (95): the backfill stops first and leaves the rest to live."""
    wait_seconds: int = 60
    usage_max_age: timedelta = timedelta(minutes=30)
    """An older API usage reading is not trusted to pause: with the queue drained no sync runs to refresh it,
    so a stale high reading would pause the run for ever; the first sync of the backfill's changes renews it."""


@dataclass(frozen=True)
class StepResult:
    """What one ``step`` did; ``as_payload`` is what the Lambda function returns to the state machine."""

    run: BackfillRun
    wait_seconds: int = 0

    @property
    def status(self) -> BackfillStatus:
        return self.run.status

    def as_payload(self) -> dict[str, Any]:
        return {
            "run_id": self.run.run_id,
            "status": self.run.status.value,
            "wait_seconds": self.wait_seconds,
            "reason": self.run.reason,
        }


SweepFactory = Callable[[str], "Sweep"]
"""Builds the sweep of a name (``backfill-<run_id>``); may raise ``SecretInvalidError``/``SecretUnavailableError``
while it reads the Zuora secret."""


class BackfillService:
    """Creates backfill runs and advances them one invocation (``step``) at a time."""

    def __init__(
        self,
        *,
        store: BackfillStore,
        mapping: MappingConfig,
        sweeps: SweepFactory,
        checkpoints: SweepCheckpoints,
        backlog: QueueBacklog,
        api_usage: ApiUsageReader,
        breaker: BreakerReader,
        pacing: Pacing | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._mapping = mapping
        self._sweeps = sweeps
        self._checkpoints = checkpoints
        self._backlog = backlog
        self._api_usage = api_usage
        self._breaker = breaker
        self.pacing = pacing or Pacing()
        self._clock = clock
        self._monotonic = monotonic

    def plan(
        self, objects: Iterable[str] = (), since: datetime | None = None, until: datetime | None = None
    ) -> BackfillRun:
        """A new run (not stored): ``objects`` (default every mapped one) in write order, ``until`` default now."""
        now = self._clock()
        named = list(dict.fromkeys(objects))
        unknown = [o for o in named if o not in self._mapping.objects]
        if unknown:
            mapped = ", ".join(self._mapping.write_order())
            raise BackfillRequestError(f"--object {', '.join(unknown)}: not a mapped object (mapped: {mapped})")
        order = [o for o in self._mapping.write_order() if not named or o in named]
        start, end = since or ZUORA_EPOCH, until or now
        for option, value in (("--since", start), ("--until", end)):
            if value.tzinfo is None:
                raise BackfillRequestError(f"{option} {value.isoformat()}: give a UTC offset (e.g. +00:00 or Z)")
        if end > now:
            raise BackfillRequestError(f"--until {end.isoformat()}: is in the future (now {now.isoformat()})")
        if start >= end:
            raise BackfillRequestError(f"--since {start.isoformat()}: must be before --until {end.isoformat()}")
        run_id = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        return BackfillRun(
            run_id=run_id,
            objects=tuple(order),
            since=start.astimezone(UTC),
            until=end.astimezone(UTC),
            created_at=now,
            updated_at=now,
            progress=tuple(ObjectProgress(o) for o in order),
        )

    def create(
        self, objects: Iterable[str] = (), since: datetime | None = None, until: datetime | None = None
    ) -> BackfillRun:
        """Plan a run and store it (``BackfillRequestError`` names a bad option; nothing is stored then)."""
        run = self.plan(objects, since, until)
        self._store.create(run)
        return run

    def load(self, run_id: str) -> BackfillRun:
        run = self._store.load(run_id)
        if run is None:
            raise BackfillNotFoundError(f"no backfill run {run_id}")
        return run

    def reopen(self, run_id: str) -> BackfillRun:
        """A stopped run made ready to step again (``--resume``): a failed or waiting one runs on from its cursors
        once its cause is fixed; a finished one stays done."""
        run = self.load(run_id)
        if run.status in (BackfillStatus.FAILED, BackfillStatus.WAITING):
            run = self._stored(replace(run, status=BackfillStatus.RUNNING, reason=""))
        return run

    def view(self, run_id: str) -> BackfillRun:
        """The run with its unfinished objects' counts as their sweep cursors have them (saved every page)."""
        return self.live(self.load(run_id))

    def live(self, run: BackfillRun) -> BackfillRun:
        for progress in run.progress:
            if progress.finished or progress.started_at is None:
                continue
            cursor = self._checkpoints.load(run.sweep_name, progress.object_type)
            if cursor is not None and cursor.pages > progress.pages:
                run = run.with_progress(_counted(progress, cursor))
        return run

    def runs(self) -> list[BackfillRun]:
        return self._store.runs()

    def pause_reason(self) -> str | None:
        """Why the backfill must give way to live callouts now, or None (asked before every page)."""
        if self._breaker.read().is_open:
            return "the circuit breaker is open"
        backlog = self._backlog.backlog()
        if backlog > self.pacing.max_backlog:
            return f"callout queue backlog {backlog} > {self.pacing.max_backlog}"
        usage = self._api_usage.api_usage()
        if (
            usage is not None
            and self._clock() - usage.observed_at <= self.pacing.usage_max_age
            and usage.percent >= self.pacing.max_api_percent
        ):
            return f"Salesforce API usage {usage.percent:.1f} % >= {self.pacing.max_api_percent:g} %"
        return None

    def step(self, run_id: str, *, deadline: float) -> StepResult:
        """Advance the run until ``deadline`` (monotonic), a pause, a failure or its end; store and return it."""
        run = self.load(run_id)
        if run.status in (BackfillStatus.DONE, BackfillStatus.FAILED):
            return StepResult(run)
        run = replace(run, steps=run.steps + 1)
        try:
            result = self._advance(run, deadline)
        except (SecretInvalidError, ZuoraAuthError, ZuoraRequestError) as exc:
            failed = replace(self._latest(run), status=BackfillStatus.FAILED, reason=_reason(exc))
            result = StepResult(self._stored(failed))
        except (SecretUnavailableError, QueueUnavailableError, StateUnavailableError, ZuoraRetryableError) as exc:
            # The sweep kept its cursor before the failing page: waiting and trying again resumes there.
            waiting = replace(self._latest(run), status=BackfillStatus.WAITING, reason=_reason(exc))
            result = StepResult(self._stored(waiting), wait_seconds=self.pacing.wait_seconds)
        return result

    def _latest(self, run: BackfillRun) -> BackfillRun:
        # What this step stored before it failed (an object's start), so the failure keeps it.
        try:
            stored = self._store.load(run.run_id)
        except StateUnavailableError:
            return run
        return replace(stored, steps=run.steps) if stored else run

    def _advance(self, run: BackfillRun, deadline: float) -> StepResult:
        if reason := self.pause_reason():
            return self._waiting(run, reason)
        for object_type in run.objects:
            progress = run.object_progress(object_type)
            if progress.finished:
                continue
            now = self._clock()
            if progress.started_at is None:
                progress = replace(progress, started_at=now)
                run = self._stored(replace(run.with_progress(progress), status=BackfillStatus.RUNNING, reason=""))
            watermark = self._checkpoints.watermark(run.sweep_name, object_type)
            if watermark is not None and watermark >= run.until:
                # Read to its end by an earlier step that stopped before it could store so: not read again.
                run = self._stored(run.with_progress(replace(progress, finished_at=now)))
                continue
            sweep = self._sweeps(run.sweep_name)
            outcome = sweep.run(object_type, run.since, run.until, deadline=deadline, should_stop=self.pause_reason)
            progress = _counted(progress, outcome.cursor)
            if outcome.finished:
                run = self._stored(run.with_progress(replace(progress, finished_at=self._clock())))
                continue
            run = run.with_progress(progress)
            if outcome.stopped_by == "deadline":
                return StepResult(self._stored(replace(run, status=BackfillStatus.RUNNING, reason="")))
            return self._waiting(run, outcome.stopped_by or "paused")
        return StepResult(self._stored(replace(run, status=BackfillStatus.DONE, reason="")))

    def _waiting(self, run: BackfillRun, reason: str) -> StepResult:
        run = self._stored(replace(run, status=BackfillStatus.WAITING, reason=reason))
        return StepResult(run, wait_seconds=self.pacing.wait_seconds)

    def _stored(self, run: BackfillRun) -> BackfillRun:
        run = replace(run, updated_at=self._clock())
        self._store.save(run)
        return run


RUN_ID_PATTERN: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,63}$")


def run_id_of(event: Mapping[str, Any]) -> str:
    """The ``run_id`` of the state machine's input (``{"run_id": ...}``); ``BackfillRequestError`` names it."""
    run_id = event.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise BackfillRequestError(f"run_id: expected a backfill run id, got {run_id!r}")
    return run_id


def failed_payload(run_id: str, reason: str) -> dict[str, Any]:
    """What the function answers for a run it cannot step at all (no such run, a malformed event)."""
    return {"run_id": run_id, "status": BackfillStatus.FAILED.value, "wait_seconds": 0, "reason": reason}


def summary(run: BackfillRun, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per object: pages, records read, queued, malformed, duration and records/s (the CLI's closing table)."""
    at = now or run.updated_at or datetime.now(UTC)
    rows = []
    for progress in run.progress:
        seconds = progress.seconds(at)
        rows.append(
            {
                "object": progress.object_type,
                "state": "done" if progress.finished else ("running" if progress.started_at else "not started"),
                "pages": progress.pages,
                "read": progress.read,
                "queued": progress.queued,
                "malformed": progress.malformed,
                "seconds": round(seconds, 1),
                "records_per_second": round(progress.read / seconds, 1) if seconds > 0 else None,
            }
        )
    return rows


def _counted(progress: ObjectProgress, cursor: SweepCursor) -> ObjectProgress:
    # The cursor's counts are cumulative over the window (every step of this run), so they replace, not add.
    return replace(progress, pages=cursor.pages, read=cursor.read, queued=cursor.queued, malformed=cursor.malformed)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
