"""The local stack's parts log on the one logger the fault drill filters (``nrtsync_local.stack``).

The drill hides its simulated kills with a filter on that logger (``faults._quiet_kills``); a logger's filters
do not see records of its children, so a part of the stack that logged on a logger of its own would print a
traceback for every simulated kill. A real failure must still be logged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from nrtsync_local.drill.run import SimulatedKillError, _quiet_kills
from nrtsync_local.stack import SYNC
from nrtsync_local.stack.handlers import LocalHandlers
from nrtsync_local.stack.threads import run_poller
from nrtsync_local.template import load_template


def _killed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise SimulatedKillError("killed after the handler returned")


def _broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError("a real bug")


def test_a_handler_that_raises_is_logged_unless_the_drill_simulated_it(caplog: pytest.LogCaptureFixture) -> None:
    # Given the stack's handlers and the drill's filter in place
    handlers = LocalHandlers(load_template(), region="eu-west-1", stack_name="logging", with_metrics=False)

    # When one invocation is killed by the drill and another fails for real
    with caplog.at_level(logging.ERROR), _quiet_kills():
        with pytest.raises(SimulatedKillError):
            handlers.invoke(SYNC, _killed, {}, None)
        with pytest.raises(ValueError, match="a real bug"):
            handlers.invoke(SYNC, _broken, {}, None)

    # Then only the real failure is logged, with its traceback
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("nrtsync_local.stack", f"{SYNC} raised")]
    assert caplog.records[0].exc_info is not None
    assert isinstance(caplog.records[0].exc_info[1], ValueError)


class _FailingPoller:
    """Fails each receive with the given errors, then asks the poll loop to stop."""

    def __init__(self, stopping: threading.Event, errors: list[Exception]) -> None:
        self._stopping, self._errors = stopping, errors

    def poll_once(self, stop: threading.Event) -> None:
        if not self._errors:
            self._stopping.set()
            return
        raise self._errors.pop(0)


def test_the_poller_thread_logs_a_receive_failure_unless_the_drill_simulated_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a poll loop whose receives fail twice: once a simulated kill, once an SQS error
    stopping = threading.Event()
    poller = _FailingPoller(stopping, [SimulatedKillError("killed"), ConnectionError("SQS went away")])

    # When the loop runs under the drill's filter (each failure waits 1 s before the next receive)
    with caplog.at_level(logging.ERROR), _quiet_kills():
        run_poller(poller, stopping)  # type: ignore[arg-type]  # a fake with poll_once only

    # Then only the SQS error is logged, and the loop went on after each failure until told to stop
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("nrtsync_local.stack", "the sync poller failed to receive or delete; retrying in 1 s")
    ]
    assert stopping.is_set()
