"""`make local`: the whole product on this machine, in one process, until Ctrl-C or SIGTERM.

    .venv/bin/python -m nrtsync_local.stack [--state-dir .local] [--batch-window SECONDS] [--no-metrics]
        [--reconcile-every SECONDS|off]

``main`` starts a ``LocalDeployment``, prints how to use it (the banner), and waits for a signal: SIGINT or
SIGTERM stop it, SIGUSR1 runs the reconcile function now (its result is logged).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Literal

from nrtsync_local.stack.deployment import LocalDeployment
from nrtsync_local.stack.environment import SalesforceOrg
from nrtsync_local.stack.spec import EVENTS_DIR, LOGGER_NAME, LocalDeploymentError
from nrtsync_local.stack.state_file import DEFAULT_STATE_DIR, STATE_FILE_NAME
from nrtsync_local.stack.zuora_tenant import ZuoraTenant

log = logging.getLogger(LOGGER_NAME)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nrtsync_local.stack", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where stack.json is written (default: .local)"
    )
    parser.add_argument("--batch-window", type=float, help="sync batching window in seconds (default: the template's)")
    parser.add_argument("--salesforce-latency-ms", type=int, default=0, help="the stand-in's added latency per call")
    parser.add_argument("--no-metrics", action="store_true", help="do not run the metrics function")
    parser.add_argument(
        "--metrics-interval", type=float, help="seconds between metrics runs (default: MetricsSchedule)"
    )
    parser.add_argument(
        "--reconcile-every",
        type=_seconds_or_off,
        help="seconds between reconcile runs, or off (default: ReconcileSchedule when it is a rate)",
    )
    return parser.parse_args(argv)


def _seconds_or_off(value: str) -> float | Literal["off"]:
    if value.strip().lower() == "off":
        return "off"
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds or off: {value!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 (or off)")
    return seconds


def _banner(stack: LocalDeployment) -> str:
    info = stack.info()
    state_file = stack.state_file
    example = json.loads((EVENTS_DIR / "callout_account.json").read_text(encoding="utf-8"))["body"]
    compact = json.dumps(json.loads(example), separators=(",", ":"))
    cacert = f" --cacert {info['callout_ca_file']}" if info.get("callout_ca_file") else ""
    lines = [
        "nrtsync local stack is running (Ctrl-C stops it).",
        "",
        *(f"  {key:<22} {value}" for key, value in info.items()),
        "",
        "  The callout password is a throwaway generated for this run (a local secret in moto, nothing real)"
        + (f"; it is also in {state_file} (mode 0600)." if state_file else "."),
        "",
        "Send a callout:",
        f"  curl -sS{cacert} -u '{info['callout_username']}:{info['callout_password']}' \\",
        "    -H 'Content-Type: application/json' -H \"Zuora-Notification-Id: $(uuidgen || date +%s%N)\" \\",
        f"    --data '{compact}' \\",
        f"    {info['callout_url']}",
        "",
        "Look at it with the operator CLI (from this directory, in another shell; --local reads the state file):",
        "  .venv/bin/nrtsync --local sessions",
        "  .venv/bin/nrtsync --local failures",
    ]
    if stack.standin is not None:
        lines += [
            "",
            "What reached the Salesforce stand-in:",
            f"  curl -sS --cacert {info['salesforce_ca_file']} \\",
            f"    {info['salesforce_url']}/__standin/records/Zuora__CustomerAccount__c",
        ]
    if stack.zuora is not None:
        seed = {"records": [{"Id": "8a8aa1b2c3d4e5f6", "Name": "Acme", "UpdatedDate": "2026-12-01T10:00:00.000+00:00"}]}
        lines += [
            "",
            "Seed a record in the Zuora stand-in (what reconciliation and backfill read; update/ and delete/ too);"
            + (
                " `zuora setup` ran at start-up, so the stand-in calls the stack out for it by itself:"
                if info.get("callout_ca_file")
                else ""
            ),
            f"  curl -sS --cacert {info['zuora_ca_file']} -H 'Content-Type: application/json' \\",
            f"    --data '{json.dumps(seed, separators=(',', ':'))}' \\",
            f"    {info['zuora_url']}/__standin/records/Account",
        ]
    if stack.info().get("zuora_url"):
        every = stack.reconcile_interval_seconds
        lines += [
            "",
            "Reconciliation (queues the Zuora changes Salesforce lacks; docs/ZUORA.md): "
            + (f"runs every {every:g} s" if every else "not scheduled (--reconcile-every SECONDS to schedule it)"),
            "  run it now (its result is logged here):",
            f"  kill -USR1 {os.getpid()}",
        ]
    if stack.metrics_error:
        lines += ["", f"Metrics are OFF: the metrics function could not be imported ({stack.metrics_error})."]
    return "\n".join(lines)


def _serve(
    stack: LocalDeployment, wake: threading.Event, reconcile_asked: threading.Event, stopping: threading.Event
) -> None:
    """Waits for a signal: a stop ends it; SIGUSR1 runs the reconcile function (a failed run is logged)."""
    while True:
        wake.wait()
        if stopping.is_set() or not reconcile_asked.is_set():
            return
        reconcile_asked.clear()
        wake.clear()
        if stopping.is_set():  # a stop that came with the SIGUSR1 wins
            return
        try:
            log.info("reconcile run (SIGUSR1): %s", json.dumps(stack.run_reconcile_now()))
        except Exception:  # the stack keeps running: the failure and its reason are in the log
            log.exception("the reconcile run failed")


def main(argv: list[str] | None = None) -> int:
    """Runs the stack in the foreground until SIGINT or SIGTERM; 0 after a clean stop."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stop = threading.Event()  # wakes the main loop
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received; stopping", signal.Signals(signum).name)
        stopping.set()
        stop.set()

    reconcile_asked = threading.Event()

    def on_usr1(_signum: int, _frame: FrameType | None) -> None:
        reconcile_asked.set()
        stop.set()  # wakes the main loop, which tells the two apart

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_usr1)
    try:
        stack = LocalDeployment(
            state_file=args.state_dir / STATE_FILE_NAME,
            sync_batch_window_seconds=args.batch_window,
            salesforce_latency_ms=args.salesforce_latency_ms,
            with_metrics=not args.no_metrics,
            metrics_interval_seconds=args.metrics_interval,
            reconcile_every_seconds=args.reconcile_every,
            salesforce_org=SalesforceOrg.from_environ(),
            zuora_tenant=ZuoraTenant.from_environ(),
            zuora_callouts=True,
        )
        with stack:
            print(_banner(stack), flush=True)
            _serve(stack, stop, reconcile_asked, stopping)
    except LocalDeploymentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("nrtsync local stack stopped.", flush=True)
    return 0
