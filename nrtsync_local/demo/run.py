"""`make demo`: the product's main job on this machine, from changes in Zuora to records in Salesforce, checked.

    .venv/bin/python -m nrtsync_local.demo [--accounts 24] [--seed 7] [--batch-window 1] [--log FILE]
        [--skip-reconcile]

1. starts the local stack in this process (moto, the HTTPS Salesforce stand-in, the API Gateway front, the SQS
   poller, the reconcile and metrics functions; docs/LOCAL.md) with an org that has a validation rule, one row
   lock and one HTTP 503 waiting for the sync, and the Zuora stand-in as the tenant, set up by ``zuora setup``
   (the CLI's, as ``nrtsync --local zuora setup`` runs it) so that it calls out by itself;
2. makes the changes of ``nrtsync_local.demo.stream`` in the Zuora stand-in: its event triggers send each
   change's callout to the callout URL as Zuora does (Basic after a 401 challenge, ``Zuora-Notification-Id``,
   retries), and its delivery faults make the awkward cases (callouts late, answers lost, callouts given up on);
3. after each phase waits until every callout was delivered or given up on and the queue is drained, then runs
   the reconcile function once (unless ``--skip-reconcile``), waits again, runs the metrics function;
4. prints the callouts' attempts per phase from the stand-in's delivery history, the Sync History, the failure
   list, record trails, sync and end-to-end latency P50/P90 by the brief's rule, and the Salesforce API calls used;
5. checks that every change's callout reached the endpoint (or was given up on where the stream says so), that the
   stand-in holds exactly the newest valid version of every record and nothing else, that the refused record is on
   the failure list, that the deleted record is gone, that reconciliation queued exactly the records Salesforce
   lacked, and that the queue and the dead-letter queue are empty. Exit status 0 only then; otherwise a diff and 1
   (130 on Ctrl-C).

The functions' own logs and EMF metrics (what CloudWatch Logs would hold) go to a file, named at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from nrtsync_local.demo.changes import Attempt, ChangeMaker, make_phase
from nrtsync_local.demo.progress import Progress, wait_drained, wait_for_callouts, wait_for_waiting
from nrtsync_local.demo.report import reconciliation_report, report, section
from nrtsync_local.demo.steps import DemoStream, Stamper
from nrtsync_local.demo.stream import VALIDATION_RULE, build_stream
from nrtsync_local.demo.verification import (
    EXIT_MISMATCH,
    Expectation,
    Observation,
    expect,
    observe,
    print_verdict,
    verification_summary,
    verify,
)
from nrtsync_local.demo.zuora_setup import print_setup, zuora_setup
from nrtsync_local.stack import LocalDeployment
from nrtsync_local.template import load_template, parameter_defaults

DEMO_BATCH_WINDOW_SECONDS = 1.0


DEMO_RETRY_DELAY_SECONDS = 1


# Zuora retries a callout 30 minutes after a failed attempt by default (up to 1,440); a few seconds here, so that
# the demo sees its retries.
DEMO_CALLOUT_RETRY_SECONDS = 3.0
ZUORA_CALLOUT_RETRY_SECONDS = 1800


STANDIN_LATENCY_MS = 20


# The reconcile window ends this long before now (deployed default RECONCILE_SETTLE_SECONDS=120, so that a
# callout still on its way is not queued twice): short here, so that the demo's changes, a few seconds old, are in.
DEMO_RECONCILE_SETTLE_SECONDS = 1


PIPELINE = "Zuora (its callouts) -> API Gateway -> ingest -> SQS -> sync -> Salesforce"


EXIT_INTERRUPTED = 130


@dataclass
class DemoOptions:
    accounts: int = 24
    seed: int = 7
    batch_window: float = DEMO_BATCH_WINDOW_SECONDS
    log: Path | None = None
    reconcile: bool = True
    """False: the reconcile step is skipped, so the lost changes stay lost and the verification fails."""


@dataclass
class DemoRun:
    """What one run produced (the tests read it)."""

    exit_code: int
    stream: DemoStream
    attempts: list[Attempt] = field(default_factory=list)
    """The Zuora stand-in's delivery history, one row per attempt, with the phase it came in."""
    setup: dict[str, Any] = field(default_factory=dict)
    """What ``zuora setup`` made in the Zuora stand-in (``triggers``, ``definitions``), as its API lists them."""
    expectation: Expectation | None = None
    observation: Observation | None = None
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    log_path: Path | None = None
    reconcile: dict[str, Any] | None = None
    """The reconcile function's result; None when the step was skipped."""


Inspect = Callable[[LocalDeployment, DemoRun], None]


def run_demo(options: DemoOptions, *, out: TextIO, err: TextIO = sys.stderr, inspect: Inspect | None = None) -> DemoRun:
    """The whole demo; ``inspect`` (tests) is called after the verification, while the stack still runs."""
    stream = build_stream(accounts=options.accounts, seed=options.seed)
    demo = DemoRun(exit_code=EXIT_MISMATCH, stream=stream, log_path=options.log or _new_log_file())
    assert demo.log_path is not None  # noqa: S101 - for mypy
    progress = Progress(out, err, total_stages=len(stream.phases) + 5)
    print(f"nrtsync demo: {PIPELINE}, all on this machine\n", file=out, flush=True)
    progress.stage("Starting the local stack (moto, Salesforce and Zuora stand-ins, API front, SQS poller, metrics)")
    stack = LocalDeployment(
        stack_name=f"demo{uuid.uuid4().hex[:8]}",
        sync_batch_window_seconds=options.batch_window,
        salesforce_latency_ms=STANDIN_LATENCY_MS,
        with_metrics=True,
        # The demo runs reconciliation once, when it chooses: not on a schedule.
        reconcile_every_seconds="off",
        # The Zuora stand-in calls out by itself, set up by ``zuora setup`` at start-up.
        zuora_callouts=True,
        environment_overrides={
            "RETRY_DELAY_SECONDS": str(DEMO_RETRY_DELAY_SECONDS),
            "RECONCILE_SETTLE_SECONDS": str(DEMO_RECONCILE_SETTLE_SECONDS),
        },
    )
    with demo.log_path.open("w", encoding="utf-8") as log, _functions_write_to(log), stack:
        _function_logger_to(log)
        _prepare_org(stack, stream, options, progress)
        demo.setup = _prepare_zuora(stack, progress, out)
        since = datetime.now(UTC)
        _make_stream(stack, stream, progress, demo.attempts)
        progress.stage("Waiting until nothing is left on the queue (children waiting for parents included)")
        progress.note(f"drained in {wait_drained(stack, progress):.1f} s")
        reconcile_calls = _reconcile(stack, stream, options, progress, demo)
        progress.stage("Running the metrics function once (as its schedule does every minute)")
        metrics = stack.run_metrics_now()
        progress.note(
            f"published {metrics.get('metric_data_published')} metric data points to (moto's) CloudWatch "
            f"(windows 5m/1h/24h/7d; minute {metrics.get('minute')})"
        )
        progress.stage("Report")
        demo.figures = report(stack, stream, demo.attempts, since, out)
        demo.expectation = expect(stream)
        demo.figures |= reconciliation_report(stack, stream, demo.reconcile, reconcile_calls, out)
        section(out, "Verification")
        demo.observation = observe(stack, demo.expectation, demo.reconcile)
        verification_summary(demo.expectation, demo.observation, out)
        demo.problems = verify(demo.expectation, demo.observation)
        if inspect is not None:
            inspect(stack, demo)
        print(f"\nFunction logs and EMF metrics (what CloudWatch Logs would hold): {demo.log_path}", file=out)
    demo.seconds = progress.elapsed
    print(f"Done in {demo.seconds:.1f} s; everything the demo started is stopped.", file=out)
    demo.exit_code = print_verdict(demo.problems, out)
    return demo


def _new_log_file() -> Path:
    descriptor, name = tempfile.mkstemp(prefix="nrtsync-demo-", suffix=".log")
    os.close(descriptor)
    return Path(name)


def _prepare_org(stack: LocalDeployment, stream: DemoStream, options: DemoOptions, progress: Progress) -> None:
    """The org's validation rule and a row lock; says how this run differs from a deployed stack."""
    standin = stack.standin
    if standin is None:
        raise RuntimeError("the demo runs against the Salesforce stand-in (unset SALESFORCE_LOGIN_URL)")
    standin.set_faults(validation_rules=[VALIDATION_RULE], row_lock={"external_ids": stream.row_lock_ids, "count": 1})
    defaults = parameter_defaults(load_template())
    progress.note(f"ready in {progress.elapsed:.1f} s; callout URL {stack.callout_url} (Basic auth)")
    progress.note(
        f"batching window {options.batch_window:g} s here (deployed default BatchingWindowSeconds="
        f"{defaults['BatchingWindowSeconds']}, at least 1), retry delay {DEMO_RETRY_DELAY_SECONDS} s "
        f"(deployed {defaults['RetryDelaySeconds']} s), stand-in {STANDIN_LATENCY_MS} ms per call"
    )
    progress.note(
        f"the org: a validation rule refusing Name = {VALIDATION_RULE['equals']!r}; one UNABLE_TO_LOCK_ROW "
        "on an invoice; one HTTP 503 on the first call of phase 2"
    )
    progress.note(
        f"reconciliation runs once, on demand, with a settle time of {DEMO_RECONCILE_SETTLE_SECONDS} s (deployed "
        f"RECONCILE_SETTLE_SECONDS={defaults['ReconcileSettleSeconds']})"
    )


def _prepare_zuora(stack: LocalDeployment, progress: Progress, out: TextIO) -> dict[str, Any]:
    """The Zuora stand-in's retry interval shortened; what ``zuora setup`` made in it at start-up, printed."""
    zuora = stack.zuora
    if zuora is None:
        raise RuntimeError("the demo's tenant is the Zuora stand-in (unset ZUORA_BASE_URL)")
    settings = zuora.callouts(retry_interval_seconds=DEMO_CALLOUT_RETRY_SECONDS)["settings"]
    made = zuora_setup(zuora)
    progress.note(
        f"Zuora: the stand-in is the tenant and calls out by itself: `nrtsync --local zuora setup` ran at start-up "
        f"(in process) and made {len(made['triggers'])} event triggers and {len(made['definitions'])} "
        "notification definitions:"
    )
    print_setup(made, out)
    progress.note(
        f"its callouts: {settings['retries']} retries (Zuora's default) {settings['retry_interval_seconds']:g} s apart "
        f"here (Zuora's default {ZUORA_CALLOUT_RETRY_SECONDS // 60} minutes); every change below is made in it, and "
        "its callouts are the only ones"
    )
    return made


def _reconcile(
    stack: LocalDeployment, stream: DemoStream, options: DemoOptions, progress: Progress, demo: DemoRun
) -> int | None:
    """Runs the reconcile function once, as its schedule would, and waits until what it queued is synced;
    returns the Salesforce API calls that took (None when skipped)."""
    if not options.reconcile:
        progress.stage("Skipping reconciliation (--skip-reconcile): the callouts Zuora gave up on stay lost")
        return None
    interval = parameter_defaults(load_template())["ReconcileSchedule"]
    progress.stage(f"Running the reconcile function once (as its schedule, {interval}, does)")
    # Its window ends the settle time before now: wait until the newest change is that old.
    newest = max(v.updated_date for v in stream.versions if v.updated_date is not None)
    time.sleep(
        max(0.0, (newest + timedelta(seconds=DEMO_RECONCILE_SETTLE_SECONDS) - datetime.now(UTC)).total_seconds())
    )
    standin = stack.standin
    calls_before = int(standin.stats()["api_calls"]) if standin is not None else 0
    demo.reconcile = stack.run_reconcile_now()
    progress.note(f"read {demo.reconcile.get('read')} Zuora records, queued {demo.reconcile.get('queued')}")
    progress.note(f"what it queued was synced; drained in {wait_drained(stack, progress):.1f} s")
    return (int(standin.stats()["api_calls"]) if standin is not None else 0) - calls_before


def _make_stream(stack: LocalDeployment, stream: DemoStream, progress: Progress, attempts: list[Attempt]) -> None:
    """Makes each phase's changes in the Zuora stand-in, waits for their callouts and the sync, and keeps the phase's
    rows of the stand-in's delivery history (every phase ends with no callout left to attempt: its rows are
    exactly those added meanwhile)."""
    standin, zuora = stack.standin, stack.zuora
    if zuora is None:
        raise RuntimeError("the demo's tenant is the Zuora stand-in (unset ZUORA_BASE_URL)")
    maker = ChangeMaker(zuora, Stamper())
    seen = len(maker.history())
    for number, phase in enumerate(stream.phases, 1):
        if number == 2 and standin is not None:
            standin.set_faults(fail_next=[{"status": 503}])
        progress.stage(f"{phase.title}: {len(phase.steps)} changes in Zuora")
        seconds = make_phase(maker, phase, progress)
        progress.note(f"{len(phase.steps)} changes made in {seconds:.1f} s; Zuora calls out for each")
        if phase.settle == "waiting" and phase.watch is not None:
            waited = wait_for_waiting(stack, phase.watch, progress)
            progress.note(
                "the sync tried the children: they wait for their parent accounts, whose callouts Zuora retries"
                if waited is not None
                else "the sync has not tried the children yet; they may meet their parents in one batch"
            )
        progress.note(f"every callout delivered or given up on in {wait_for_callouts(maker.pending, progress):.1f} s")
        progress.note(f"queue drained in {wait_drained(stack, progress):.1f} s")
        history = maker.history()
        attempts += [Attempt.of(number, row) for row in history[seen:]]
        seen = len(history)
        phase_attempts = [a for a in attempts if a.phase == number]
        progress.note(
            f"{len(phase_attempts)} callout attempts, {sum(a.attempt > 1 for a in phase_attempts)} of them retries; "
            f"{sum(a.given_up for a in phase_attempts)} given up on"
        )


@contextlib.contextmanager
def _functions_write_to(log: TextIO) -> Iterator[None]:
    """The handlers print EMF metrics to stdout and log there: into ``log`` while the demo runs.

    Powertools' logger keeps the stream it was built with, so ``_function_logger_to`` points it at ``log`` once
    the stack has imported it; on the way out it gets its stream back (stdout, if it was built inside this).
    """
    try:
        with contextlib.redirect_stdout(log):
            yield
    finally:
        for handler, stream in _logger_streams.values():
            handler.stream = sys.stdout if stream is log or getattr(stream, "closed", False) else stream
        _logger_streams.clear()


_logger_streams: dict[int, tuple[logging.StreamHandler[Any], Any]] = {}


def _function_logger_to(log: TextIO) -> None:
    from nrtsync.observability import logger  # noqa: PLC0415 - imported by the stack with its environment

    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            _logger_streams.setdefault(id(handler), (handler, handler.stream))
            handler.stream = log


def _parse_args(argv: Sequence[str] | None) -> DemoOptions:
    parser = argparse.ArgumentParser(prog="python -m nrtsync_local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=24, help="customer accounts in the stream (default 24)")
    parser.add_argument("--seed", type=int, default=7, help="the stream's random seed (default 7)")
    parser.add_argument(
        "--batch-window",
        type=float,
        default=DEMO_BATCH_WINDOW_SECONDS,
        help=f"sync batching window in seconds (default {DEMO_BATCH_WINDOW_SECONDS:g}; deployed default 2)",
    )
    parser.add_argument("--log", type=Path, help="where the functions' logs go (default: a new temporary file)")
    parser.add_argument(
        "--skip-reconcile",
        action="store_true",
        help="do not run the reconcile function: the verification then fails, naming the records left behind",
    )
    args = parser.parse_args(argv)
    return DemoOptions(
        accounts=args.accounts,
        seed=args.seed,
        batch_window=args.batch_window,
        log=args.log,
        reconcile=not args.skip_reconcile,
    )


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    options = _parse_args(argv)
    stdout = out or sys.stdout

    def on_sigterm(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        return run_demo(options, out=stdout).exit_code
    except KeyboardInterrupt:
        print("\ninterrupted: the local stack was stopped", file=stdout)
        return EXIT_INTERRUPTED
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
