"""A backfill's administration, as the operator's CLI does it: plan and create runs, reopen a stopped one, view
their progress. It needs no Zuora client and paces nothing: the runs are stepped by ``services.backfill.step``
(in Lambda, or in the CLI's own process for a local run).

``until`` is fixed when the run is created and ``since``/``until`` are stored with it: a resumed run reads the
very windows it started, whatever the clock says then.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from nrtsync.ports.backfill import BackfillRun, BackfillStatus, ObjectProgress

if TYPE_CHECKING:
    from nrtsync.domain.mapping import MappingConfig
    from nrtsync.ports.backfill import BackfillStore
    from nrtsync.ports.sweep import SweepCheckpoints, SweepCursor

ZUORA_EPOCH: Final = datetime(2006, 1, 1, tzinfo=UTC)
"""The default ``since``: before Zuora's founding, so a run without one reads a whole tenant."""


class BackfillRequestError(ValueError):
    """A run that cannot be: an unknown object, a window that is empty or in the future. Names the option."""


class BackfillNotFoundError(LookupError):
    """No run has that id."""


class BackfillAdmin:
    """Creates backfill runs, reopens stopped ones and shows their progress (the CLI's side of a backfill)."""

    def __init__(
        self,
        *,
        store: BackfillStore,
        mapping: MappingConfig,
        checkpoints: SweepCheckpoints,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._mapping = mapping
        self._checkpoints = checkpoints
        self._clock = clock

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
        return load_run(self._store, run_id)

    def reopen(self, run_id: str) -> BackfillRun:
        """A stopped run made ready to step again (``--resume``): a failed or waiting one runs on from its cursors
        once its cause is fixed; a finished one stays done."""
        run = self.load(run_id)
        if run.status in (BackfillStatus.FAILED, BackfillStatus.WAITING):
            run = replace(run, status=BackfillStatus.RUNNING, reason="", updated_at=self._clock())
            self._store.save(run)
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
                run = run.with_progress(counted(progress, cursor))
        return run

    def runs(self) -> list[BackfillRun]:
        return self._store.runs()


def load_run(store: BackfillStore, run_id: str) -> BackfillRun:
    """The stored run; ``BackfillNotFoundError`` when there is none."""
    run = store.load(run_id)
    if run is None:
        raise BackfillNotFoundError(f"no backfill run {run_id}")
    return run


def counted(progress: ObjectProgress, cursor: SweepCursor) -> ObjectProgress:
    """An object's progress with its sweep cursor's counts."""
    # The cursor's counts are cumulative over the window (every step of this run), so they replace, not add.
    return replace(progress, pages=cursor.pages, read=cursor.read, queued=cursor.queued, malformed=cursor.malformed)


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
