"""The local stack's SQS event source mapping: the poller receives nothing while the breaker has it disabled, keeps
each batch within Lambda's 6 MB, fails a batch whose invocation times out, and the mapping refuses a change while it
is still changing state, as Lambda's does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nrtsync.adapters.aws.event_source import LambdaEventSourceSwitch
from nrtsync.ports.breaker import EventSourceBusyError
from nrtsync_fakes.clock import FakeClock
from nrtsync_local.poller import LAMBDA_SYNC_PAYLOAD_BYTES, LocalLambdaApi, MappingSwitch, SqsEventSourcePoller


class CountingSqs:
    """Only what the poller calls; counts the receives (each one a receive the real mapping would spend)."""

    def __init__(self) -> None:
        self.receives = 0

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.receives += 1
        return {"Messages": []}


def poller(sqs: CountingSqs, switch: MappingSwitch) -> SqsEventSourcePoller:
    return SqsEventSourcePoller(
        sqs,
        queue_url="q",
        queue_arn="arn:aws:sqs:eu-west-1:000000000000:q",
        handler=lambda event, context: {},
        batch_size=10,
        window_seconds=0,
        function_timeout_seconds=3,
        switch=switch,
    )


def test_a_disabled_mapping_makes_no_receive_and_an_enabled_one_polls_again() -> None:
    sqs, switch = CountingSqs(), MappingSwitch()
    p = poller(sqs, switch)

    switch.set_enabled(False)
    for _ in range(3):
        assert p.poll_once(threading.Event()) == 0
    assert sqs.receives == 0
    assert p.stats.receive_calls == 0

    switch.set_enabled(True)
    p.poll_once(threading.Event())
    assert sqs.receives == 1


def test_the_flag_file_lets_another_process_switch_the_poller(tmp_path: Path) -> None:
    # Given the stack's switch and the CLI's view of the same file (another process on a real run)
    path = tmp_path / "stack.event-source.json"
    stack_side = MappingSwitch(path)
    sqs = CountingSqs()
    p = poller(sqs, stack_side)

    # When the other side writes "disabled"
    MappingSwitch(path).set_enabled(False)  # creating it writes "enabled", then this disables
    path.write_text('{"enabled": false}', encoding="utf-8")

    # Then the stack's poller stops receiving
    assert stack_side.enabled is False
    p.poll_once(threading.Event())
    assert sqs.receives == 0


class OneMessageThenEmpty(CountingSqs):
    """One message on the first receive, then nothing, each empty receive long-polling its whole-second wait as
    SQS does: the window runs out with an almost empty batch."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[int] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives += 1
        self.waits.append(kwargs["WaitTimeSeconds"])
        if self.receives == 1:
            return {"Messages": [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": "{}"}]}
        # Real time: the poller under test times its batching window with time.monotonic (it takes no clock).
        time.sleep(kwargs["WaitTimeSeconds"])
        return {"Messages": []}


def test_the_last_second_of_a_batching_window_is_not_spent_spinning_on_empty_receives() -> None:
    # Given a 1.5 s batching window that receives one message and then nothing (moto answers at once)
    sqs = OneMessageThenEmpty()
    p = SqsEventSourcePoller(
        sqs,
        queue_url="q",
        queue_arn="arn:aws:sqs:eu-west-1:000000000000:q",
        handler=lambda event, context: {},
        batch_size=10,
        window_seconds=1.5,
        function_timeout_seconds=3,
    )

    # When it collects one batch
    batch = p._collect(threading.Event())

    # Then the window's last half second costs a few paced receives, not one per loop turn (it made hundreds)
    assert [m["MessageId"] for m in batch] == ["m1"]
    assert sqs.waits[:3] == [1, 1, 0]  # whole seconds while they fit, then the last half second
    assert sqs.receives <= 10


class QueueOf(CountingSqs):
    """A queue of messages handed out up to 10 a receive, in order, with what the poller deletes recorded."""

    def __init__(self, bodies: list[str]) -> None:
        super().__init__()
        self.waiting = [{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body} for i, body in enumerate(bodies)]
        self.deleted: list[str] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives += 1
        most = kwargs["MaxNumberOfMessages"]
        taken, self.waiting = self.waiting[:most], self.waiting[most:]
        return {"Messages": taken}

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        receipts = {entry["ReceiptHandle"] for entry in kwargs["Entries"]}
        self.deleted += [f"m{handle[1:]}" for handle in sorted(receipts)]
        return {"Successful": kwargs["Entries"]}


def test_a_batch_stops_short_of_6_mb_and_what_did_not_fit_opens_the_next_one() -> None:
    # Given 15 messages of about 1 MB each (SQS's largest) and a batch size that alone would take them all
    sqs = QueueOf(["x" * 1_000_000 for _ in range(15)])
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        return {}

    p = SqsEventSourcePoller(
        sqs,
        queue_url="q",
        queue_arn="arn:aws:sqs:eu-west-1:000000000000:q",
        handler=handler,
        batch_size=100,
        window_seconds=0,
        function_timeout_seconds=3,
    )

    # When the poller runs until the queue is empty
    while p.poll_once(threading.Event()):
        pass

    # Then every event is within Lambda's 6 MB, each message went in exactly one, in order
    sizes = [len(json.dumps(event, separators=(",", ":")).encode()) for event in events]
    assert all(size <= LAMBDA_SYNC_PAYLOAD_BYTES for size in sizes), sizes
    counts = [len(event["Records"]) for event in events]
    assert counts[0] == 6  # not the 10 of the first receive: a seventh would take it over 6 MB
    assert max(counts) <= 6
    carried = [record["messageId"] for event in events for record in event["Records"]]
    assert carried == [f"m{i}" for i in range(15)]
    assert sorted(sqs.deleted, key=lambda m: int(m[1:])) == carried


def test_a_handler_still_running_at_the_function_timeout_fails_its_batch() -> None:
    # Given a sync handler that hangs past the function's (here shortened) timeout
    sqs = QueueOf(["{}", "{}"])
    released = threading.Event()
    answered: list[str] = []

    def stuck(event: dict[str, Any], context: Any) -> dict[str, Any]:
        released.wait(5)  # a real wait: the poller times the invocation out on its own thread
        answered.append("late")
        return {"batchItemFailures": []}

    p = SqsEventSourcePoller(
        sqs,
        queue_url="q",
        queue_arn="arn:aws:sqs:eu-west-1:000000000000:q",
        handler=stuck,
        batch_size=10,
        window_seconds=0,
        function_timeout_seconds=0.2,
    )

    # When it polls one batch
    started = time.monotonic()
    carried = p.poll_once(threading.Event())
    elapsed = time.monotonic() - started

    # Then the invocation fails at the timeout: nothing is deleted, both messages return after their visibility
    assert carried == 2
    assert elapsed < 2
    assert (p.stats.timeouts, p.stats.handler_errors, p.stats.deleted) == (1, 1, 0)
    assert sqs.deleted == []
    # And the abandoned handler's late answer changes nothing
    released.set()
    assert wait_for(lambda: answered == ["late"])
    assert sqs.deleted == []


def wait_for(condition: Callable[[], bool]) -> bool:
    """Real time: the abandoned handler finishes on its own thread."""
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_change_while_the_mapping_is_changing_state_is_refused_and_the_layer_asks_again() -> None:
    # Given the local mapping behind the local Lambda API, and the layer's adapter on it, on one simulated clock
    clock = FakeClock()
    mapping = MappingSwitch(transition_seconds=0.8, clock=clock.monotonic)
    api = LocalLambdaApi(mapping, function_name="SyncFunction", queue_arn="arn:queue")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    switch = LambdaEventSourceSwitch("SyncFunction", "arn:queue", api, sleep=sleep)

    # When the breaker disables it and, at once, enables it again
    switch.set_enabled(False)
    assert mapping.state == "Disabling"
    switch.set_enabled(True)

    # Then the second change was refused while Disabling (ResourceInUseException) and went through after waits
    assert mapping.refused == 2
    assert waits == [0.5, 1.0]
    assert mapping.changes == [False, True]
    assert mapping.state == "Enabling"
    clock.advance(1)
    assert mapping.state == "Enabled"


def test_a_mapping_busy_past_the_layers_waits_is_in_progress_not_broken() -> None:
    clock = FakeClock()
    mapping = MappingSwitch(transition_seconds=60, clock=clock.monotonic)
    api = LocalLambdaApi(mapping, function_name="SyncFunction", queue_arn="arn:queue")
    switch = LambdaEventSourceSwitch("SyncFunction", "arn:queue", api, sleep=clock.advance)

    switch.set_enabled(False)
    with pytest.raises(EventSourceBusyError):
        switch.set_enabled(True)

    assert mapping.changes == [False]
    assert mapping.enabled is False
