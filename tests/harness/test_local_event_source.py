"""The local stack's event source mapping flag: the poller receives nothing while the breaker has it disabled."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from nrtsync_local.poller import MappingSwitch, SqsEventSourcePoller


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
