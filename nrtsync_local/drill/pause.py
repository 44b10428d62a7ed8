"""The long-pause drill: each condition under which Salesforce cannot take writes is held for 30 minutes of
simulated time through the local deployment, then cleared; nothing may reach the dead-letter queue.

Why simulated: 30 real minutes per condition would make the drill a two-hour job. The sync service, its breaker
and its probe run on a clock the drill owns (``SimClock``, injected through ``nrtsync.app.sync.build_sync``); the
probe is driven by the drill, once per simulated minute (the template's ``rate(1 minute)``); and the SQS
visibility delays the sync asks for follow that clock (``SimulatedVisibility``: 60 simulated seconds are 1 real
second). While the breaker is open the poller makes no receive at all (the mapping is disabled), so the real time
that passes during the hold does not matter to the receive counts; it is kept short.

The conditions, each as the stand-in answers it (nrtsync_local/salesforce):
- ``budget``: the org's usage over ``ApiUsageBudgetPercent`` (``Sforce-Limit-Info`` and ``/limits`` say 96 %);
- ``allocation``: the daily allocation used up (403 ``REQUEST_LIMIT_EXCEEDED`` "TotalRequests Limit exceeded.",
  on every API call, ``/limits`` included);
- ``credentials``: the connected app's secret changed in Salesforce (the token endpoint's 400 ``invalid_client``);
- ``outage``: every API call answered 503.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nrtsync.domain.models.callout import QueuedChange

if TYPE_CHECKING:
    from nrtsync.ports.queue import RetryScheduler
    from nrtsync_local.stack.deployment import LocalDeployment
    from nrtsync_local.standin.process import StandinClient

CONDITIONS = ("budget", "allocation", "credentials", "outage")
ACCOUNTS = "Zuora__CustomerAccount__c"
EXTERNAL_ID = "Zuora__External_Id__c"
# Real seconds per simulated second for the visibility delays: a simulated minute is one real second.
VISIBILITY_SCALE = 1 / 60


class SimClock:
    """The drill's clock: starts at the real time, moves only when the drill advances it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class SimulatedVisibility:
    """The sync's RetryScheduler with each visibility delay scaled from simulated to real seconds (rounded up,
    so a delay never becomes 0: 0 makes a message visible at once, which a positive delay never does)."""

    def __init__(self, inner: RetryScheduler, scale: float = VISIBILITY_SCALE) -> None:
        self._inner = inner
        self._scale = scale

    def delay(self, receipt_handles: Iterable[str], seconds: int) -> list[str]:
        real = seconds if seconds <= 0 else max(1, math.ceil(seconds * self._scale))
        return self._inner.delay(receipt_handles, real)


@dataclass
class PauseFigures:
    """One condition's figures."""

    condition: str
    reason: str = ""
    changes_sent: int = 0
    held_simulated_minutes: float = 0.0
    probes: int = 0
    probe_api_calls: int = 0
    messages_received_while_paused: int = 0
    receive_calls_while_paused: int = 0
    dlq: int = 0
    written: int = 0
    stale_in_salesforce: int = 0  # records whose Salesforce value is not their newest version
    missing_in_salesforce: int = 0
    drain_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PauseDrill:
    """Runs the conditions one after the other on one started ``LocalDeployment`` (built with ``clock`` and
    ``SimulatedVisibility``, ``probe_interval_seconds=0`` and a ``state_file``-less, metrics-less stack)."""

    stack: LocalDeployment
    clock: SimClock
    records: int = 30
    hold_minutes: int = 30
    open_timeout: float = 90.0
    drain_timeout: float = 120.0
    log: Callable[[str], None] = lambda _: None
    _secret: str = ""  # the stand-in's client secret while ``credentials`` holds

    def run(self, conditions: Iterable[str] = CONDITIONS) -> list[PauseFigures]:
        return [self.hold(condition) for condition in conditions]

    # -- one condition ---------------------------------------------------------------------------------------

    def hold(self, condition: str) -> PauseFigures:
        standin = self.stack.standin
        if standin is None:
            raise RuntimeError("the long-pause drill needs the Salesforce stand-in")
        figures = PauseFigures(condition)
        ids = [f"{condition[:3].upper()}{n:03d}" for n in range(self.records)]
        newest: dict[str, str] = {}

        # Salesforce stops taking writes, then changes come: the breaker opens on the first failed batch(es).
        self._break(condition, standin)
        if condition == "budget":
            # The budget is read from the answers: one accepted call shows 96 %, the next batch is held back.
            self._send(ids[:1], version=0, newest=newest, figures=figures)
            self._wait_until(lambda: self.stack.poll_stats.deleted > 0 or not self.stack.event_source_enabled, 30)
        self._send(ids, version=1, newest=newest, figures=figures)
        self._wait_until(lambda: not self.stack.event_source_enabled, self.open_timeout, "the breaker did not open")
        self._wait_until(lambda: not self.stack.sync_busy, 30, "the last batch did not finish")
        state = self._breaker_item()
        figures.reason = state.get("reason", "")
        opened_at = self.clock()

        # While paused: newer versions and re-deliveries of older ones arrive, and none is received.
        before = (self.stack.poll_stats.messages, self.stack.poll_stats.receive_calls)
        self._send(ids, version=2, newest=newest, figures=figures)
        self._send(ids[::3], version=1, newest=newest, figures=figures)  # Zuora re-delivers older ones
        api_before = int(standin.stats().get("api_calls", 0))
        for _ in range(self.hold_minutes):
            self.clock.advance(60)
            answer = self.stack.run_probe_now()
            figures.probes += 1
            if not answer.get("paused"):
                figures.problems.append(f"{condition}: the probe closed the breaker while the fault held")
                break
            time.sleep(0.01)
        figures.probe_api_calls = int(standin.stats().get("api_calls", 0)) - api_before
        figures.messages_received_while_paused = self.stack.poll_stats.messages - before[0]
        figures.receive_calls_while_paused = self.stack.poll_stats.receive_calls - before[1]

        # Salesforce takes writes again: the next probe closes the breaker and the backlog drains.
        self._clear(condition, standin)
        self.clock.advance(60)
        closed = self.stack.run_probe_now()
        figures.probes += 1
        figures.held_simulated_minutes = (self.clock() - opened_at).total_seconds() / 60
        if closed.get("paused"):
            figures.problems.append(f"{condition}: the probe did not close the breaker once cleared: {closed}")
        started = time.monotonic()
        try:
            self.stack.wait_until_drained(self.drain_timeout)
        except TimeoutError as exc:
            figures.problems.append(f"{condition}: {exc}")
        figures.drain_seconds = round(time.monotonic() - started, 1)
        self._verify(standin, newest, figures)
        self.log(f"{condition}: {figures.as_dict()}")
        return figures

    # -- the conditions, as the stand-in answers them ------------------------------------------------------------

    def _break(self, condition: str, standin: StandinClient) -> None:
        limit = int(standin.set_faults()["api_limit"])
        if condition == "budget":
            standin.set_faults(api_used=math.ceil(limit * 0.96))
        elif condition == "allocation":
            standin.set_faults(api_used=limit)
        elif condition == "credentials":
            self._secret = standin.client_secret
            standin.configure(client_secret="changed-in-salesforce")  # noqa: S106 - a wrong secret on purpose
            standin.set_faults(expire_sessions=True)
        elif condition == "outage":
            standin.set_faults(fail_next=[{"status": 503}] * 100_000)
        else:
            raise ValueError(f"unknown condition {condition!r}; one of {CONDITIONS}")

    def _clear(self, condition: str, standin: StandinClient) -> None:
        if condition in {"budget", "allocation"}:
            standin.set_faults(api_used=0)  # a new day's allocation
        elif condition == "credentials":
            standin.configure(client_secret=self._secret)  # the operator puts the right secret back
        else:
            standin.set_faults(fail_next=[])

    # -- sending and checking ------------------------------------------------------------------------------------

    def _send(self, ids: list[str], *, version: int, newest: dict[str, str], figures: PauseFigures) -> None:
        from nrtsync.adapters.aws.sqs import SqsChangeQueue  # noqa: PLC0415 - the layer, loaded with the stack

        queue = SqsChangeQueue(self.stack.resources.queue_url, client=self.stack.client("sqs"))
        base = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
        for record_id in ids:
            name = f"{record_id} v{version}"
            queue.send(
                QueuedChange(
                    object_type="Account",
                    record_id=record_id,
                    updated_date=base + timedelta(minutes=version),
                    # Linked to a Salesforce Account: Zuora 360 syncs only such billing accounts (others are held).
                    fields={"Name": name, "CrmId": "0015g00000XyZ12AAB"},
                    notification_id=f"{record_id}-{version}",
                    received_at=datetime.now(UTC),
                )
            )
            figures.changes_sent += 1
            if version >= int(newest.get(record_id, "-1 v-1").rsplit("v", 1)[-1]):
                newest[record_id] = name

    def _verify(self, standin: StandinClient, newest: dict[str, str], figures: PauseFigures) -> None:
        sqs = self.stack.client("sqs")
        attributes = sqs.get_queue_attributes(
            QueueUrl=self.stack.resources.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        figures.dlq = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_salesforce = {r.get(EXTERNAL_ID): r.get("Name") for r in standin.records(ACCOUNTS)}
        for record_id, name in newest.items():
            held = in_salesforce.get(record_id)
            if held is None:
                figures.missing_in_salesforce += 1
            elif held != name:
                figures.stale_in_salesforce += 1
            else:
                figures.written += 1
        if figures.dlq:
            figures.problems.append(f"{figures.condition}: {figures.dlq} changes in the DLQ")
        if figures.missing_in_salesforce or figures.stale_in_salesforce:
            figures.problems.append(
                f"{figures.condition}: {figures.missing_in_salesforce} missing, {figures.stale_in_salesforce} stale"
            )

    def _breaker_item(self) -> dict[str, str]:
        from nrtsync.adapters.aws.tables import BREAKER_KEY  # noqa: PLC0415

        item = (
            self.stack.client("dynamodb")
            .get_item(TableName=self.stack.resources.state_table, Key={"pk": {"S": BREAKER_KEY}}, ConsistentRead=True)
            .get("Item", {})
        )
        return {k: str(v.get("S", v.get("N", ""))) for k, v in item.items()}

    @staticmethod
    def _wait_until(check: Callable[[], bool], timeout: float, failure: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() >= deadline:
                if failure:
                    raise TimeoutError(failure)
                return
            time.sleep(0.05)


@contextlib.contextmanager
def pause_drill(*, records: int = 30, hold_minutes: int = 30) -> Iterator[PauseDrill]:
    """A local deployment on a simulated clock, started, with the drill set up on it; stopped on leaving."""
    from nrtsync_local.stack import LocalDeployment  # noqa: PLC0415 - sets the process's environment when started

    clock = SimClock()
    stack = LocalDeployment(
        with_metrics=False,
        sync_batch_window_seconds=0.5,
        stack_name="nrtsync-long-pause",
        environment_overrides={"RETRY_DELAY_SECONDS": "1", "BREAKER_FAILURE_THRESHOLD": "3"},
        sync_clock=clock,
        retries_wrapper=SimulatedVisibility,
        probe_interval_seconds=0,  # the drill runs the probe once per simulated minute
    )
    with stack:
        yield PauseDrill(stack, clock, records=records, hold_minutes=hold_minutes)


def run_pause_drill(
    conditions: Iterable[str] = CONDITIONS, *, records: int = 30, hold_minutes: int = 30
) -> list[PauseFigures]:
    """Holds each condition on a fresh ``pause_drill``; returns the figures."""
    with pause_drill(records=records, hold_minutes=hold_minutes) as drill:
        return drill.run(conditions)


def main(argv: list[str] | None = None) -> int:
    """``python -m nrtsync_local.drill.pause [--minutes N] [--records N]``: prints each condition's figures."""
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="hold each Salesforce condition for N simulated minutes")
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--records", type=int, default=30)
    args = parser.parse_args(argv)
    figures = run_pause_drill(records=args.records, hold_minutes=args.minutes)
    print(json.dumps([f.as_dict() for f in figures], indent=2))
    return 1 if any(f.problems for f in figures) else 0


if __name__ == "__main__":
    raise SystemExit(main())
