"""``make local``'s way to run the reconcile function now: SIGUSR1 wakes the main loop, which runs it and keeps
serving; a stop (alone or with it) ends the loop; ``--reconcile-every`` takes seconds or ``off``."""

from __future__ import annotations

import argparse
import threading
from typing import Any, cast

import pytest

from nrtsync_local.stack import LocalDeployment
from nrtsync_local.stack.foreground import _seconds_or_off, _serve


class FakeStack:
    """What ``_serve`` uses of a ``LocalDeployment``: ``run_reconcile_now``, here counting runs."""

    def __init__(self, wake: threading.Event, asked: threading.Event, stopping: threading.Event) -> None:
        self.runs = 0
        self._wake, self._asked, self._stopping = wake, asked, stopping
        self.fail = False

    def run_reconcile_now(self) -> dict[str, Any]:
        self.runs += 1
        if self.runs == 1:
            # A second SIGUSR1 while the first run goes on, then a stop after that one
            self._asked.set()
            self._wake.set()
        else:
            self._stopping.set()
            self._wake.set()
        if self.fail:
            raise RuntimeError("Zuora is down")
        return {"read": 0, "queued": 0}


def _events() -> tuple[threading.Event, threading.Event, threading.Event]:
    return threading.Event(), threading.Event(), threading.Event()


def test_sigusr1_runs_the_reconcile_function_and_the_stack_keeps_serving_until_stopped() -> None:
    wake, asked, stopping = _events()
    stack = FakeStack(wake, asked, stopping)
    asked.set()
    wake.set()

    _serve(cast("LocalDeployment", stack), wake, asked, stopping)

    assert stack.runs == 2  # both requests ran; the stop that came with the second one ended the loop after it


def test_a_failed_run_is_logged_and_the_stack_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    wake, asked, stopping = _events()
    stack = FakeStack(wake, asked, stopping)
    stack.fail = True
    asked.set()
    wake.set()

    _serve(cast("LocalDeployment", stack), wake, asked, stopping)

    assert stack.runs == 2
    assert "the reconcile run failed" in caplog.text


def test_a_stop_alone_ends_the_loop_without_a_run() -> None:
    wake, asked, stopping = _events()
    stack = FakeStack(wake, asked, stopping)
    stopping.set()
    wake.set()

    _serve(cast("LocalDeployment", stack), wake, asked, stopping)

    assert stack.runs == 0


def test_reconcile_every_takes_seconds_or_off() -> None:
    assert _seconds_or_off("off") == "off"
    assert _seconds_or_off(" OFF ") == "off"
    assert _seconds_or_off("30") == 30.0
    for bad in ("0", "-5", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            _seconds_or_off(bad)
