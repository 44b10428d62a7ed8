"""A backfill's step: the initial load of a tenant, or a replay of a time range, through the callout queue.

A run (created by ``services.backfill.admin``) reads every record of its objects whose ``UpdatedDate`` is in
``[since, until)`` with the sweep engine (``services.sweep``, named ``backfill-<run_id>``) and queues the changes
Salesforce lacks, where the sync function takes them as it takes callouts. The rules here:

- Objects run one after another in the mapping's write order, parents before children: an object starts only
  when the objects before it are read to their end, so a child's change never reaches the queue before its
  parent's (the sync would have to wait for the parent).
- A step does as much as one invocation can before its deadline and says what to do next: ``running`` (call
  again), ``waiting`` (call again after ``wait_seconds``), ``done``, ``failed``. The sweep checkpoints every page,
  so a step that ends anywhere, even by a crash, loses at most a page that is then queued twice (the sync drops
  the copy as a duplicate).
- Pacing, so that live callouts are not starved: before every page the run pauses (``waiting``) while the
  callout queue holds more than ``max_backlog`` messages, while the org's API usage is at or above
  ``max_api_percent`` (below the sync's own budget stop), or while the circuit breaker is open.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from nrtsync.domain.models.zuora import ZuoraAuthError, ZuoraRequestError, ZuoraRetryableError
from nrtsync.ports.backfill import BackfillRun, BackfillStatus
from nrtsync.ports.queue import QueueUnavailableError
from nrtsync.ports.secrets import SecretInvalidError, SecretUnavailableError
from nrtsync.ports.state import StateUnavailableError
from nrtsync.services.backfill.admin import BackfillRequestError, counted, load_run

if TYPE_CHECKING:
    from nrtsync.ports.api_usage import ApiUsageReader
    from nrtsync.ports.backfill import BackfillStore, QueueBacklog
    from nrtsync.ports.breaker import BreakerReader
    from nrtsync.ports.sweep import SweepCheckpoints
    from nrtsync.services.sweep.service import Sweep


@dataclass(frozen=True)
class Pacing:
    """The bounds that pause a backfill; their defaults and reasons are ``BackfillPacingSettings``'s."""

    max_backlog: int
    """Callout queue messages above which the run waits."""
    max_api_percent: float
    """The org's API usage (percent) at or above which the run waits."""
    wait_seconds: int
    """How long a waiting run waits before its next step."""
    usage_max_age: timedelta
    """An older API usage reading is not trusted to pause: with the queue drained no sync runs to refresh it,
    so a stale high reading would pause the run for ever; the first sync of the backfill's changes renews it."""


@dataclass(frozen=True)
class StepResult:
    """What one step did; ``as_dict`` is what the Lambda function returns to the state machine."""

    run: BackfillRun
    wait_seconds: int = 0

    @property
    def status(self) -> BackfillStatus:
        return self.run.status

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run.run_id,
            "status": self.run.status.value,
            "wait_seconds": self.wait_seconds,
            "reason": self.run.reason,
        }


@dataclass(frozen=True)
class StepRefused:
    """A step that could not start: a malformed input, or no such run. The state machine ends the run failed."""

    run_id: str
    reason: str
    run: None = None

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": BackfillStatus.FAILED.value, "wait_seconds": 0, "reason": self.reason}


SweepFactory = Callable[[str], "Sweep"]
"""Builds the sweep of a name (``backfill-<run_id>``); may raise ``SecretInvalidError``/``SecretUnavailableError``
while it reads the Zuora secret."""


class BackfillStep:
    """Advances a backfill run one invocation at a time (the backfill function's service)."""

    def __init__(
        self,
        *,
        store: BackfillStore,
        sweeps: SweepFactory,
        checkpoints: SweepCheckpoints,
        backlog: QueueBacklog,
        api_usage: ApiUsageReader,
        breaker: BreakerReader,
        pacing: Pacing,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._sweeps = sweeps
        self._checkpoints = checkpoints
        self._backlog = backlog
        self._api_usage = api_usage
        self._breaker = breaker
        self.pacing = pacing
        self._clock = clock

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

    def run(self, run_id: str, *, deadline: float) -> StepResult:
        """Advance the run until ``deadline`` (monotonic), a pause, a failure or its end; store and return it.

        ``BackfillNotFoundError`` when there is no such run."""
        run = load_run(self._store, run_id)
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
            progress = counted(progress, outcome.cursor)
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


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
