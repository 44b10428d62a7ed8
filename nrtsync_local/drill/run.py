"""The fault drill: thousands of Zuora changes through the local pipeline while everything around it misbehaves.

    .venv/bin/python -m nrtsync_local.drill                     # the short drill (1,000 changes, ~1.5 min)
    .venv/bin/python -m nrtsync_local.drill --changes 20000     # the soak (``make soak``)

What it does (docs/RELIABILITY.md has the why): a seeded generator makes versions of a few hundred Zuora
accounts and subscriptions and delivers them at a steady rate, part over HTTP through the local API Gateway
front (the real ingest handler), the rest straight onto the callout queue as ingest would queue them. Some
changes are re-delivered (same notification id, same body), some are delivered after a newer version of the
same record, a few are permanently invalid (a Name the org's validation rule refuses, a Balance that is not a
number). Meanwhile, on a fixed schedule, the Salesforce stand-in answers 503s, refuses rows with
``UNABLE_TO_LOCK_ROW``, slows down, expires the session and runs out of API allocation for a while; and the
sync handler is killed twice: once after Salesforce answered but before the state commit and the SQS delete
(its leases stay behind until they expire), once after it returned but before the poller deleted the batch.

At the end it checks that every record in the stand-in holds the newest version sent, that every change has a
final outcome in the sync history, that the failure list holds exactly the invalid changes and the DLQ
nothing, and it prints the figures. ``run_drill`` returns a ``DrillReport``; the exit status is 0 if the report has
no problems, 1 otherwise.

This module is the drill itself (the kill switch, the run, the command line); its parts are beside it in
``nrtsync_local.drill``, none of which imports this one: ``config`` (the knobs), ``generator`` (the change
stream), ``sender`` (HTTP and queue delivery), ``scheduler`` (delivery timing, the fault schedule), ``verdict``
(the checks and the report).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from nrtsync_local.drill.config import DrillConfig
from nrtsync_local.drill.generator import ChangeGenerator
from nrtsync_local.drill.scheduler import FaultSchedule, Kill, Outbox, Quarantine
from nrtsync_local.drill.sender import Sender
from nrtsync_local.drill.verdict import DrillReport, Verdict
from nrtsync_local.gateway.rules import Handler
from nrtsync_local.stack import LocalDeployment
from nrtsync_local.template import load_template, resource

if TYPE_CHECKING:
    from nrtsync.ports.salesforce import SalesforcePort

log = logging.getLogger("nrtsync_local.drill")

__all__ = ["DrillConfig", "DrillFailedError", "DrillReport", "DrillTimeoutError", "FaultDrill", "main", "run_drill"]

_TICK_SECONDS = 0.05


class DrillFailedError(RuntimeError):
    """The drill could not run to its verdict."""


class DrillTimeoutError(DrillFailedError):
    """The pipeline did not drain in time; the message says what was still on the queue."""


class SimulatedKillError(Exception):
    """Raised where the drill kills the sync handler; the poller treats it as Lambda treats a crash."""


class KillSwitch:
    """Armed by the drill's schedule, taken by the next sync invocation big enough to be worth killing."""

    def __init__(self, min_records: int = 10) -> None:
        self._lock = threading.Lock()
        self._min = min_records
        self._after_answer = False
        self._after_return = False

    def arm(self, kind: str) -> None:
        with self._lock:
            if kind == "after-answer":
                self._after_answer = True
            else:
                self._after_return = True

    def take(self, kind: str, size: int) -> bool:
        with self._lock:
            if size < self._min:
                return False
            if kind == "after-answer" and self._after_answer:
                self._after_answer = False
                return True
            if kind == "after-return" and self._after_return:
                self._after_return = False
                return True
            return False


class KillAfterAnswer:
    """A Salesforce port that, when the switch is armed, lets Salesforce write and then dies.

    It wraps the product's port whatever its write methods are called (``upsert``, ``upsert_collections``):
    the call goes through, Salesforce stores the records and answers, then ``SimulatedKillError`` leaves the
    sync service exactly as a killed container leaves it: the state table has neither the written version nor
    a released lease, and the SQS messages are not deleted.
    """

    _WRITES = frozenset({"upsert", "upsert_collections"})

    def __init__(self, inner: Any, switch: KillSwitch, on_kill: Callable[[str, int], None]) -> None:
        self._inner = inner
        self._switch = switch
        self._on_kill = on_kill

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in self._WRITES or not callable(attribute):
            return attribute

        def write_then_maybe_die(*args: Any, **kwargs: Any) -> Any:
            answer = attribute(*args, **kwargs)
            records = _count_results(answer)
            if self._switch.take("after-answer", records):
                self._on_kill(name, records)
                raise SimulatedKillError(f"drill: killed after Salesforce answered {name} for {records} records")
            return answer

        return write_then_maybe_die


def _count_results(answer: Any) -> int:
    """Records Salesforce answered for: a list of results, or a list of such lists (and errors)."""
    if not isinstance(answer, list):
        return 0
    return sum(len(part) if isinstance(part, list) else (0 if isinstance(part, Exception) else 1) for part in answer)


def drill_template(config: DrillConfig) -> dict[str, Any]:
    """template.yaml with the drill's sync timeout and queue visibility timeout (both much shorter)."""
    template = copy.deepcopy(load_template())
    resource(template, "SyncFunction")["Properties"]["Timeout"] = config.sync_timeout_seconds
    resource(template, "CalloutQueue")["Properties"]["VisibilityTimeout"] = config.visibility_timeout_seconds
    return template


class _HideSimulatedKills(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedKillError))


class FaultDrill:
    """Drives one drill against a started ``LocalDeployment`` (see ``run_drill``, which builds one for it): sends the
    generator's changes as the outbox releases them, fires the fault schedule, and asks the verdict at the end."""

    def __init__(self, stack: LocalDeployment, config: DrillConfig, switch: KillSwitch) -> None:
        if stack.standin is None:
            raise ValueError("the fault drill needs the Salesforce stand-in, not a real org")
        self._stack = stack
        self._standin = stack.standin
        self._config = config
        self._sqs = stack.client("sqs")
        self._ddb = stack.client("dynamodb")
        self._lock = threading.Lock()
        self._started = 0.0
        self._counts: Counter[str] = Counter()
        self._quarantine = Quarantine()
        rng = random.Random(config.seed)  # noqa: S311 - a reproducible drill, not security
        self._generator = ChangeGenerator(config, rng, self._quarantine.until, self._counts)
        self._outbox = Outbox(self._quarantine)
        self._sender = Sender(self._sqs, stack.resources.queue_url, stack.callout_url, stack.callout_auth, self._counts)
        self._kills: list[Kill] = []
        self._faults = FaultSchedule(
            config,
            self._standin,
            arm=switch.arm,
            send_invalid=lambda now, code: self._outbox.schedule(self._generator.invalid(now, code)),
            lockable_records=self._generator.records,
            kills=self._kills,
        )

    # --- the run ---------------------------------------------------------------------------------------------

    def run(self) -> DrillReport:
        config = self._config
        self._faults.start()
        self._started = time.monotonic()
        try:
            self._send_all()
        finally:
            self._sender.shutdown()
        sent_at = time.monotonic()
        self._faults.restore_org()
        changes = self._generator.changes
        try:
            self._stack.wait_until_drained(timeout=config.drain_timeout_seconds)
        except TimeoutError as exc:
            raise DrillTimeoutError(
                f"the pipeline did not drain within {config.drain_timeout_seconds:.0f} s after the last of "
                f"{len(changes)} changes was sent ({exc}); poller: {self._stack.poll_stats}"
            ) from exc
        drained_at = time.monotonic()
        seconds = (sent_at - self._started, drained_at - sent_at, drained_at - self._started)
        verdict = Verdict(self._stack, self._standin, self._sqs)
        return verdict.report(changes, self._counts, self._kills, self._sender.problems, seconds)

    def _send_all(self) -> None:
        config = self._config
        changes = self._generator.changes
        last_depth_check, depth = 0.0, 0
        while True:
            now = time.monotonic()
            elapsed = now - self._started
            generating = len(changes) < config.changes
            if generating:
                self._faults.fire_due(elapsed)
            if now - last_depth_check >= 0.5:
                depth, last_depth_check = self._stack.queue_depth()["visible"], now
            if generating and depth <= config.max_queue_depth:
                due = min(config.changes, int(elapsed * config.rate_per_second) + 1)
                while len(changes) < due:
                    self._outbox.schedule(*self._generator.generate(now))
            self._outbox.release_due(now, self._sender.deliver)
            self._sender.flush_direct()
            self._sender.settle()
            if not generating and not self._outbox and self._sender.idle:
                return
            time.sleep(_TICK_SECONDS)

    def on_kill_after_answer(self, sobject: str, records: int) -> None:
        """Called inside the killed invocation (it holds the invoke lock): whatever is leased now is its lease."""
        leases: dict[str, int] = {}
        now_ms = int(time.time() * 1000)
        for item in self._scan_state():
            until = int(item.get("lease_until", {}).get("N", "0"))
            if until > now_ms:
                leases[item["pk"]["S"]] = until
        now = time.monotonic()
        with self._lock:
            lead = self._config.quarantine_lead_seconds
            self._quarantine.extend({key: now + (until - now_ms) / 1000 - lead for key, until in leases.items()})
            self._kills.append(Kill("after-answer", now - self._started, records, leases))
        log.info("drill: killed after Salesforce answered %d %s records; %d leases left", records, sobject, len(leases))

    def on_kill_after_return(self, messages: int) -> None:
        with self._lock:
            self._kills.append(Kill("after-return", time.monotonic() - self._started, messages))
        log.info("drill: killed after the handler returned (%d messages not deleted)", messages)

    def _scan_state(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self._stack.resources.state_table}
        while True:
            page = self._ddb.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@contextlib.contextmanager
def _quiet_kills() -> Iterator[None]:
    stack_log = logging.getLogger("nrtsync_local.stack")
    hide = _HideSimulatedKills()
    stack_log.addFilter(hide)
    try:
        yield
    finally:
        stack_log.removeFilter(hide)


def run_drill(
    config: DrillConfig | None = None, *, stack_name: str | None = None, log_level: str | None = None
) -> DrillReport:
    """Starts a local stack set up for the drill, runs the drill, stops the stack; returns the report."""
    config = config or DrillConfig()
    random.seed(config.seed)  # the sync's retry jitter uses the module's generator: same seed, same delays
    switch = KillSwitch()
    drill: FaultDrill | None = None

    def kill_after_return(handler: Handler) -> Handler:
        def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
            response = handler(event, context)
            size = len(event.get("Records", []))
            if switch.take("after-return", size):
                if drill is not None:
                    drill.on_kill_after_return(size)
                raise SimulatedKillError(f"drill: killed after the handler returned, before {size} deletes")
            return response

        return invoke

    def kill_after_answer(port: SalesforcePort) -> SalesforcePort:
        # Injected through the wiring as the sync service's Salesforce port: it can die mid-batch once armed.
        def on_kill(call: str, records: int) -> None:
            if drill is not None:
                drill.on_kill_after_answer(call, records)

        return cast("SalesforcePort", KillAfterAnswer(port, switch, on_kill))

    stack = LocalDeployment(
        stack_name=stack_name or f"drill{os.getpid()}x{uuid.uuid4().hex[:6]}",
        sync_batch_window_seconds=config.batch_window_seconds,
        with_metrics=False,
        template=drill_template(config),
        environment_overrides={
            "RETRY_DELAY_SECONDS": str(config.retry_delay_seconds),
            "API_USAGE_RECHECK_SECONDS": str(config.api_recheck_seconds),
            **({"POWERTOOLS_LOG_LEVEL": log_level} if log_level else {}),
        },
        sync_handler_wrapper=kill_after_return,
        salesforce_wrapper=kill_after_answer,
        # The breaker's probe as often as the budget recheck: the drill's pauses last seconds, not minutes
        # (the long pauses are nrtsync_local.drill.pause's, on a simulated clock).
        probe_interval_seconds=float(config.api_recheck_seconds),
    )
    with _quiet_kills(), stack:
        drill = FaultDrill(stack, config, switch)
        return drill.run()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = DrillConfig()
    parser = argparse.ArgumentParser(prog="python -m nrtsync_local.drill", description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=defaults.changes, help="changes to send (soak: 20000)")
    parser.add_argument(
        "--records", type=int, help="distinct records (default: about a quarter of --changes, 250..5000)"
    )
    parser.add_argument("--rate", type=float, default=defaults.rate_per_second, help="changes per second")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout_seconds, help="seconds")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--verbose", action="store_true", help="the handlers' INFO logs and the drill's schedule")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # 16 state threads share boto3's pool of 10: harmless
    logging.getLogger("botocore").setLevel(logging.WARNING)
    records = args.records or min(5_000, max(250, args.changes // 4))
    config = DrillConfig(
        changes=args.changes,
        records=records,
        rate_per_second=args.rate,
        seed=args.seed,
        drain_timeout_seconds=args.drain_timeout,
    )
    try:
        with contextlib.ExitStack() as quiet:
            if not args.verbose:
                # The handlers' EMF metrics go to stdout, as to CloudWatch Logs: thousands of lines nobody reads here.
                quiet.enter_context(
                    contextlib.redirect_stdout(quiet.enter_context(open(os.devnull, "w", encoding="utf-8")))
                )
                quiet.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
            report = run_drill(config, log_level=None if args.verbose else "ERROR")
    except DrillFailedError as exc:
        print(f"drill FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {"figures": report.figures, "waiting_by_reason": report.waiting_by_reason, "problems": report.problems},
                indent=2,
            )
        )
    else:
        print("\n".join(report.lines()))
    return 0 if not report.problems else 1
