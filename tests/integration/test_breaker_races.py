"""The breaker never overrides an operator: races between the probe, the sync's trips and a pause, played on the
real state item (moto's DynamoDB) by injecting the operator's action at the exact point of each race; and the
event source mapping's ResourceInUseException (Lambda answers it while a mapping is changing state)."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from nrtsync.adapters.aws.breaker_store import DynamoBreakerStore
from nrtsync.adapters.aws.event_source import LambdaEventSourceSwitch
from nrtsync.ports.breaker import (
    BreakerReason,
    BreakerState,
    BreakerUnavailableError,
    EventSourceBusyError,
)
from nrtsync.ports.salesforce import ApiUsage
from nrtsync.services.breaker.service import CircuitBreaker, pause
from nrtsync_cli.breaker_commands import BreakerTarget, run_breaker_command
from tests.support.sync_world import STATE_TABLE

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
OPERATOR = "operator:oncall"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Switch:
    """The event source mapping; ``before_enable`` runs just before an enable lands (an operator acting then)."""

    def __init__(self) -> None:
        self.enabled = False
        self.before_enable: Callable[[], None] | None = None

    def set_enabled(self, enabled: bool) -> None:
        if enabled and self.before_enable is not None:
            act, self.before_enable = self.before_enable, None
            act()
        self.enabled = enabled


class Salesforce:
    """Answers the probe's ``/limits`` call; ``during_call`` runs while the call is in flight."""

    def __init__(self) -> None:
        self.during_call: Callable[[], None] | None = None

    def fetch_api_usage(self, *, deadline: float) -> ApiUsage:
        if self.during_call is not None:
            act, self.during_call = self.during_call, None
            act()
        return ApiUsage(used=10, limit=100, observed_at=NOW)


class UsageStore:
    def save_api_usage(self, usage: ApiUsage) -> None:
        self.saved = usage


class RacingStore:
    """The real store; ``before_write`` runs once just before the next conditional write (the other party's turn)."""

    def __init__(self, real: DynamoBreakerStore) -> None:
        self.real = real
        self.before_write: Callable[[], None] | None = None

    def read(self) -> BreakerState:
        return self.real.read()

    def write(self, state: BreakerState, *, expected: BreakerState | None = None) -> bool:
        if expected is not None and self.before_write is not None:
            act, self.before_write = self.before_write, None
            act()
        return self.real.write(state, expected=expected)

    def count_failure(self, at: datetime) -> int:
        return self.real.count_failure(at)

    def reset_failures(self) -> None:
        self.real.reset_failures()


class World:
    def __init__(self, client: Any) -> None:
        self.real = DynamoBreakerStore(STATE_TABLE, client=client)
        self.store = RacingStore(self.real)
        self.switch = Switch()
        self.salesforce = Salesforce()
        self.clock = Clock()
        self.breaker = self.breaker_with(self.switch)

    def breaker_with(self, switch: Switch, store: DynamoBreakerStore | RacingStore | None = None) -> CircuitBreaker:
        return CircuitBreaker(
            store=store or self.store,
            switch=switch,
            salesforce=self.salesforce,  # type: ignore[arg-type]  # only fetch_api_usage is called by the probe
            usage_store=UsageStore(),  # type: ignore[arg-type]
            failure_threshold=3,
            budget_percent=95.0,
            clock=self.clock,
        )

    def operator_pauses(self) -> None:
        pause(self.real, self.switch, "maintenance window", by=OPERATOR, now=self.clock())


@pytest.fixture
def race(dynamodb: Any) -> World:
    return World(dynamodb)


def test_a_pause_made_while_the_probe_calls_salesforce_stands(race: World) -> None:
    # Given the breaker opened for an outage, and an operator pausing while the probe's /limits call is in flight
    race.breaker.trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")
    race.salesforce.during_call = race.operator_pauses

    # When the probe finds Salesforce answering
    result = race.breaker.probe(deadline=10.0)

    # Then the operator's pause stands and the mapping stays disabled
    stored = race.real.read()
    assert (stored.is_open, stored.reason, stored.by) == (True, BreakerReason.MANUAL, OPERATOR)
    assert race.switch.enabled is False
    assert result.action == "manual"


def test_a_pause_between_the_probes_close_and_its_enable_disables_the_mapping_again(race: World) -> None:
    # Given the breaker opened for an outage, and an operator pausing just before the probe's enable lands
    race.breaker.trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")
    race.switch.before_enable = race.operator_pauses

    # When the probe closes the breaker
    result = race.breaker.probe(deadline=10.0)

    # Then the pause stands and the mapping ends disabled, as the operator asked
    assert race.real.read().reason is BreakerReason.MANUAL
    assert race.switch.enabled is False
    assert result.action == "manual"


def test_a_trip_never_replaces_a_pause_made_after_it_read_the_breaker(race: World) -> None:
    # Given the sync reads the breaker closed, then an operator pauses before the trip writes
    race.store.before_write = race.operator_pauses

    # When the sync trips for an outage
    state = race.breaker.trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")

    # Then the pause stands (the probe would have closed an outage, never a pause)
    assert (state.reason, race.real.read().reason) == (BreakerReason.MANUAL, BreakerReason.MANUAL)
    assert race.switch.enabled is False
    assert race.breaker.probe(deadline=10.0).action == "manual"


def test_two_concurrent_trips_keep_the_first_reason_and_since(race: World) -> None:
    # Given two invocations that both read the breaker closed; the other one writes first
    first: list[BreakerState] = []
    other = race.breaker_with(race.switch, store=race.real)
    race.store.before_write = lambda: first.append(other.trip(BreakerReason.API_BUDGET_REACHED, "budget"))

    # When this one trips for another reason
    state = race.breaker.trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")

    # Then both see the first opening, once, and the mapping is disabled
    assert state == first[0] == race.real.read()
    assert state.reason is BreakerReason.API_BUDGET_REACHED
    assert race.switch.enabled is False


def test_an_unconditional_operator_write_always_lands(race: World) -> None:
    race.breaker.trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")

    assert race.real.write(BreakerState(is_open=False, by=OPERATOR, updated_at=NOW)) is True
    assert race.real.read().is_open is False


# --- the mapping while it changes state ------------------------------------------------------------------------


class BusyLambda:
    """Lambda's API answering ResourceInUseException ``busy`` times, as it does while a mapping is Disabling."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.updates: list[bool] = []

    def list_event_source_mappings(self, **_: Any) -> dict[str, Any]:
        return {"EventSourceMappings": [{"UUID": "uuid-1"}]}

    def update_event_source_mapping(self, *, UUID: str, Enabled: bool) -> dict[str, Any]:  # noqa: N803 - boto3's
        if self.busy:
            self.busy -= 1
            error = {"Error": {"Code": "ResourceInUseException", "Message": "The resource is in use: Disabling"}}
            raise ClientError(error, "UpdateEventSourceMapping")  # type: ignore[arg-type]
        self.updates.append(Enabled)
        return {"UUID": UUID, "State": "Enabling" if Enabled else "Disabling"}


def test_a_mapping_still_changing_state_is_asked_again_after_short_waits() -> None:
    waits: list[float] = []
    lam = BusyLambda(busy=2)

    LambdaEventSourceSwitch("sync", "arn:queue", client=lam, sleep=waits.append).set_enabled(True)

    assert lam.updates == [True]
    assert waits == [0.5, 1.0]


def test_a_mapping_busy_past_the_waits_is_in_progress_not_a_failure() -> None:
    lam = BusyLambda(busy=10)
    switch = LambdaEventSourceSwitch("sync", "arn:queue", client=lam, sleep=lambda _: None)

    with pytest.raises(EventSourceBusyError) as raised:
        switch.set_enabled(False)

    assert isinstance(raised.value, BreakerUnavailableError)
    assert lam.updates == []


def test_the_probe_reports_a_busy_mapping_as_kept_open_and_asks_again_next_time(race: World) -> None:
    class BusySwitch(Switch):
        def set_enabled(self, enabled: bool) -> None:
            if enabled:
                raise EventSourceBusyError("still Disabling")
            super().set_enabled(enabled)

    race.breaker.trip(BreakerReason.SALESFORCE_UNAVAILABLE, "outage")
    breaker = race.breaker_with(BusySwitch())

    result = breaker.probe(deadline=10.0)

    # The close is undone (the queue must not stay unread with the breaker closed), and the next probe tries again
    assert result.action == "kept_open"
    assert result.error == "the event source mapping not enabled"
    assert race.real.read().is_open is True


def test_pause_while_the_mapping_changes_state_is_recorded_and_reported_in_progress(race: World) -> None:
    class BusySwitch(Switch):
        def set_enabled(self, enabled: bool) -> None:
            raise EventSourceBusyError("the resource is in use: Enabling")

    out = io.StringIO()
    args = argparse.Namespace(command="pause", reason="maintenance", by="oncall", json=False)

    code = run_breaker_command(args, None, out, target=BreakerTarget(race.real, BusySwitch()))

    assert code == 0
    assert "in progress" in out.getvalue()
    assert race.real.read().reason is BreakerReason.MANUAL
