"""``python -m bench.run --only backfill``: an initial load of a Zuora tenant through the local stack, the live
callouts it shares the queue with, and a reconcile sweep over the org once it is in step.

One ``LocalDeployment`` (moto in server mode, the Salesforce stand-in at ``SALESFORCE_LATENCY_MS`` a call as the
other benches, the Zuora stand-in, the template's batching window), in three phases:

1. **Live callouts alone.** ``LIVE_RATE`` callouts/s through the HTTP front for ``baseline_seconds``: their
   end-to-end latency (send to written, from each record's outcome item in the history table) with no backfill.
2. **Backfill.** ``records`` Zuora records (``record_counts``: the sync bench's mix, 2:3:3:2 accounts,
   subscriptions, invoices, payments; every child's ``AccountId`` a seeded account) seeded in the Zuora
   stand-in, then a backfill of every mapped object run by the very service ``nrtsync --local backfill`` runs
   (``backfill_stepper`` on ``BackfillTarget.of_local`` and ``local_zuora``, stepped by ``run_backfill_locally``)
   until done and the queue drained, while the same live callouts keep arriving. Then the Salesforce stand-in
   must hold every record, and a sample must carry the values Zuora has.
3. **Reconcile over an org in step.** The reconcile function (``run_reconcile_now``, its default 24 h lookback
   covers the seeded ``UpdatedDate``s) reads every record again and must queue nothing: 0 Salesforce API calls.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import progress, quiet_handlers
from bench.workload import Workload, fields_for, live_callout, live_record, seed_parents, zuora_id
from nrtsync.domain.latency import percentile
from nrtsync.domain.mapping import MappingConfig, build_record, cached_mapping
from nrtsync_local.callouts import CalloutSender, send_paced

if TYPE_CHECKING:
    from nrtsync.ports.backfill import BackfillRun
    from nrtsync_local.stack import LocalDeployment

RECORDS = 100_000
QUICK_RECORDS = 10_000
SHARES = (("Account", 2), ("Subscription", 3), ("Invoice", 3), ("Payment", 2))
"""Parents first; 2:3:3:2 is the sync bench's batch mix (40/60/60/40, bench/workload.py)."""
ID_OFFSET = 1_000_000
"""Backfilled records' numbers start here: apart from the live callouts' (10,000 + n) and the 40 seeded parents."""
SALESFORCE_LATENCY_MS = 150
LIVE_RATE = 2.0
BASELINE_SECONDS = 60.0
MAX_BACKLOG = 200
"""The backfill's queue backlog bound for this bench (``BACKFILL_MAX_QUEUE_BACKLOG``; the template's default is
2,000). moto's SQS answers a ReceiveMessage in time that grows with the queue's depth (measured here: 21 ms for
10 messages at a depth of 100, 270 ms at 1,000, 1,035 ms at 3,000), so a queue of thousands starves the poller
(about 10 records/s with the default bound and Zuora's 2,000-record pages) and measures moto, not the pipeline.
A page is queued whole once the backlog is at or under the bound, so the queue peaks near bound + page."""
ZUORA_PAGE_SIZE = 200
"""The Zuora stand-in's page for this bench (Zuora's, and the stand-in's default, is 2,000 records a page): with
the bound above it keeps moto's queue under about 400 messages. It multiplies the Zuora calls by 10 (reported)."""
WAIT_SECONDS = 2
"""``BACKFILL_WAIT_SECONDS`` here (default 60): the state machine's wait between paused steps. At the local
sync's pace a 60 s wait would leave the queue empty most of the time and measure the wait, not the pipeline."""
TARGET_CALLS_PER_RECORD = 1 / 190
TARGET_RECONCILE_CALLS = 0
SPOT_CHECKS = 40
BACKLOG_REASON = "callout queue backlog"


# --- pure helpers (tests/bench/test_backfill_bench.py) -------------------------------------------------------------


def record_counts(total: int, shares: tuple[tuple[str, int], ...] = SHARES) -> dict[str, int]:
    """``total`` split by ``shares`` (largest remainder, so the counts add up to ``total``), parents first."""
    if total < len(shares):
        raise ValueError(f"total {total}: at least one record of each of {len(shares)} objects")
    weight = sum(share for _, share in shares)
    exact = [(name, total * share / weight) for name, share in shares]
    counts = {name: int(value) for name, value in exact}
    short = total - sum(counts.values())
    for name, _ in sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)[:short]:
        counts[name] += 1
    return counts


def zuora_records(total: int, *, first: datetime, last: datetime) -> dict[str, list[dict[str, Any]]]:
    """``total`` records as Zuora's query answers them, per object (accounts first): ``Id``, ``UpdatedDate``
    spread evenly over ``[first, last]`` (Zuora's dateTime with milliseconds and offset), the callout's fields
    without empty ones (Zuora's query leaves a null out), each child's ``AccountId`` one of the accounts."""
    counts = record_counts(total)
    accounts = [zuora_id("Account", ID_OFFSET + n) for n in range(counts["Account"])]
    step = (last - first) / max(1, total - 1)
    position = itertools.count()
    found: dict[str, list[dict[str, Any]]] = {}
    for object_type, count in counts.items():
        records = []
        for n in range(count):
            parent = accounts[n % len(accounts)]
            stamp = first + step * next(position)
            fields = {k: v for k, v in fields_for(object_type, ID_OFFSET + n, 1, parent).items() if v != ""}
            records.append(
                {"Id": zuora_id(object_type, ID_OFFSET + n), "UpdatedDate": stamp.isoformat(timespec="milliseconds")}
                | fields
            )
        found[object_type] = records
    return found


def pause_reason_kind(reason: str) -> str:
    """A pause's reason without its figures (``callout queue backlog 2310 > 600`` -> ``callout queue backlog``)."""
    words = [w for w in reason.split() if not any(c.isdigit() for c in w) and w not in {">", ">=", "%"}]
    return " ".join(words) or "paused"


def calls_per_record(calls: int, records: int) -> float:
    if records <= 0:
        raise ValueError("no records: calls per record is undefined")
    return calls / records


def changes_written(result: Mapping[str, Any]) -> int:
    """The backfill's records plus the live callouts written beside them: the records the phase's API calls wrote
    (a live callout rides in the same sync batches, so its writes cannot be told apart from the backfill's)."""
    live = result.get("live_during_backfill") or {}
    return int(result["backfill"]["records"]) + int(live.get("written", 0))


def targets(result: Mapping[str, Any]) -> dict[str, bool]:
    """PASS/FAIL of the two targets: <= 1 Salesforce call per 190 of the backfill's own records, every backfilled
    record there and as Zuora has it; the reconcile over the org in step reads them all, queues 0 and spends 0
    calls. Live callouts written in the same batches are not counted: they would flatter the backfill's figure
    (``changes_written`` gives the blended figure shown beside it)."""
    backfill, reconcile = result["backfill"], result["reconcile"]
    return {
        "backfill_api_calls_per_record": backfill["salesforce_api_calls"]
        <= backfill["records"] * TARGET_CALLS_PER_RECORD
        and backfill["in_salesforce"] == backfill["records"]
        and not backfill.get("spot_check_differences"),
        "reconcile_in_step_api_calls": reconcile["salesforce_api_calls"] == TARGET_RECONCILE_CALLS
        and reconcile["queued"] == 0
        and reconcile["read"] == backfill["records"],
    }


def seconds(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


# --- the live callouts ----------------------------------------------------------------------------------------


@dataclass
class LiveCallouts:
    """Callouts at ``rate`` from one thread until stopped; remembers each record it sent, and the statuses."""

    stack: LocalDeployment
    parents: list[str]
    first: int
    rate: float = LIVE_RATE
    sent: list[tuple[str, str]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        callouts = CalloutSender(self.stack.callout_url, self.stack.callout_auth)
        try:
            answers = send_paced(
                callouts.post, lambda n: live_callout(self.first + n, self.parents), rate=self.rate, stop=self._stop
            )
        finally:
            callouts.close()
        for sent in answers:
            self.statuses[sent.status] += 1
            self.sent.append(live_record(self.first + sent.n, self.parents)[:2])

    @contextmanager
    def running(self) -> Iterator[LiveCallouts]:
        thread = threading.Thread(target=self.run, name="live-callouts", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=60)

    def latencies_ms(self) -> list[int]:
        """Each sent record's end-to-end latency, from its ``written`` outcome item in the history table."""
        written = written_callouts(self.stack)
        return [written[key] for key in self.sent if key in written]

    def summary(self) -> dict[str, Any]:
        e2e = self.latencies_ms()
        return {
            "rate_per_second": self.rate,
            "callouts": len(self.sent),
            "written": len(e2e),
            "http_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "e2e_p50_s": seconds(percentile(e2e, 50)),
            "e2e_p90_s": seconds(percentile(e2e, 90)),
            "e2e_max_s": seconds(max(e2e, default=None)),
        }


def written_callouts(stack: LocalDeployment) -> dict[tuple[str, str], int]:
    """(object type, record id) -> e2e ms of every callout written, in one paginated scan of the history table.

    Not a query per record: moto answers a DynamoDB Query by scanning every item of the table (moto 5's
    ``Table.query``), so thousands of queries over a history of 100,000 outcomes would take longer than the run.
    """
    ddb = stack.client("dynamodb")
    found: dict[tuple[str, str], int] = {}
    kwargs: dict[str, Any] = {
        "TableName": stack.resources.history_table,
        "FilterExpression": "#t = :outcome AND #s = :written AND #src = :callout",
        "ExpressionAttributeNames": {"#t": "type", "#s": "status", "#src": "source"},
        "ExpressionAttributeValues": {
            ":outcome": {"S": "outcome"},
            ":written": {"S": "written"},
            ":callout": {"S": "callout"},
        },
    }
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            found[(item["object_type"]["S"], item["record_id"]["S"])] = int(item["e2e_ms"]["N"])
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- the phases -----------------------------------------------------------------------------------------------


@dataclass
class Pauses:
    """The backfill's pauses by reason, and the seconds it waited (``run_backfill_locally``'s sleep)."""

    by_reason: Counter[str] = field(default_factory=Counter)
    waited_s: float = 0.0
    deepest_queue: int = 0
    runs: list[BackfillRun] = field(default_factory=list)

    def on_progress(self, stack: LocalDeployment) -> Callable[[BackfillRun], None]:
        from nrtsync.ports.backfill import BackfillStatus  # noqa: PLC0415 - after the stack set the environment

        def seen(run: BackfillRun) -> None:
            self.runs.append(run)
            if run.status is BackfillStatus.WAITING:
                self.by_reason[pause_reason_kind(run.reason)] += 1
            self.deepest_queue = max(self.deepest_queue, stack.queue_depth().get("visible", 0))
            read = sum(p.read for p in run.progress)
            if len(self.runs) % 10 == 0:
                progress(f"backfill: {run.status.value}, {read} read, queue {stack.queue_depth()}")

        return seen

    def sleep(self, wait: float) -> None:
        self.waited_s += wait
        time.sleep(wait)


def _in_salesforce(
    stack: LocalDeployment, mapping: MappingConfig, seeded: Mapping[str, list[dict[str, Any]]]
) -> tuple[int, list[str]]:
    """How many seeded records the Salesforce stand-in holds (by external id), and the differences a sample
    checked field by field found (none expected)."""
    assert stack.standin is not None  # noqa: S101 - the bench runs on the stand-in
    rng = random.Random(12)  # noqa: S311 - a reproducible sample, not a secret
    present = 0
    differences: list[str] = []
    with stack.standin.session() as http:
        for object_type, records in seeded.items():
            obj = mapping.objects[object_type]
            answer = http.get(f"{stack.standin.url}/__standin/records/{obj.sobject}", timeout=300)
            answer.raise_for_status()
            stored = {r.get(obj.external_id_field): r for r in answer.json()["records"]}
            present += sum(1 for r in records if r["Id"] in stored)
            for record in rng.sample(records, min(SPOT_CHECKS // len(seeded), len(records))):
                fields = {k: v for k, v in record.items() if k not in ("Id", "UpdatedDate")}
                expected = build_record(mapping, object_type, record["Id"], fields)
                got = stored.get(record["Id"], {})
                wrong = {k: (v, got.get(k)) for k, v in expected.items() if not isinstance(v, dict) and got.get(k) != v}
                if wrong:
                    differences.append(f"{object_type} {record['Id']}: {wrong}")
    return present, differences


def _wait_until_shallow(stack: LocalDeployment, *, deadline: float, messages: int = 20) -> None:
    while sum(stack.queue_depth().values()) > messages:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the callout queue did not drain: {stack.queue_depth()}")
        time.sleep(2.0)


def _backfill(stack: LocalDeployment, state_file: Path, records: int, parents: list[str]) -> dict[str, Any]:
    from nrtsync.services.backfill.settings import BackfillPacingSettings  # noqa: PLC0415 - after the stack set the environment
    from nrtsync_cli.backfill_commands import (  # noqa: PLC0415
        BackfillTarget,
        backfill_admin,
        backfill_stepper,
        local_zuora,
        run_backfill_locally,
    )

    assert stack.standin is not None  # noqa: S101
    assert stack.zuora is not None  # noqa: S101
    mapping = cached_mapping(None)
    now = datetime.now(UTC)
    seeded = zuora_records(records, first=now - timedelta(hours=3), last=now - timedelta(minutes=10))
    t0 = time.perf_counter()
    for object_type, rows in seeded.items():
        stack.zuora.seed(object_type, rows, timeout=300)
    stack.zuora.configure(page_size=ZUORA_PAGE_SIZE)
    progress(f"backfill: {records} records seeded in the Zuora stand-in in {time.perf_counter() - t0:.1f} s")

    target = BackfillTarget.of_local(state_file)
    pacing = BackfillPacingSettings.model_validate(
        {"BACKFILL_MAX_QUEUE_BACKLOG": str(MAX_BACKLOG), "BACKFILL_WAIT_SECONDS": str(WAIT_SECONDS)}
    ).pacing()
    stepper = backfill_stepper(target, mapping=mapping, zuora=local_zuora(target, None), pacing=pacing)
    admin = backfill_admin(target, mapping=mapping)
    sf_before = int(stack.standin.stats()["api_calls"])
    zuora_before = dict(stack.zuora.stats()["counts"])
    batches_before = len(stack.poll_stats.batch_sizes)
    pauses = Pauses()
    live = LiveCallouts(stack, parents, first=100_000)
    run = admin.create()
    progress(f"backfill: run {run.run_id} of {', '.join(run.objects)}, backlog bound {MAX_BACKLOG}, live callouts")
    started = time.monotonic()
    with live.running():
        final = run_backfill_locally(
            stepper, admin, run.run_id, on_progress=pauses.on_progress(stack), sleep=pauses.sleep
        )
        read_for = time.monotonic() - started
        progress(f"backfill: {final.status.value} after {read_for:.0f} s; waiting for the queue to drain")
        # Live callouts go on while the backfill's last pages drain (the deepest part of the queue); they stop
        # once the queue is nearly empty, since a steady stream would never let it be quite empty.
        _wait_until_shallow(stack, deadline=time.monotonic() + 3_600)
    stack.wait_until_drained(timeout=600)
    wall = time.monotonic() - started
    sf_calls = int(stack.standin.stats()["api_calls"]) - sf_before
    zuora_after = dict(stack.zuora.stats()["counts"])
    sizes = stack.poll_stats.batch_sizes[batches_before:]
    present, differences = _in_salesforce(stack, mapping, seeded)
    result = {
        "records": records,
        "records_by_object": {k: len(v) for k, v in seeded.items()},
        "status": final.status.value,
        "reason": final.reason,
        "steps": final.steps,
        "read": sum(p.read for p in final.progress),
        "queued": sum(p.queued for p in final.progress),
        "in_salesforce": present,
        "spot_checked": SPOT_CHECKS,
        "spot_check_differences": differences[:5],
        "seconds_reading": round(read_for, 1),
        "seconds_until_drained": round(wall, 1),
        "records_per_second": round(records / wall, 1),
        "salesforce_api_calls": sf_calls,
        "api_calls_per_record": round(calls_per_record(sf_calls, records), 5),
        "records_per_api_call": round(records / sf_calls, 1) if sf_calls else None,
        "zuora_calls": {k: int(zuora_after.get(k, 0)) - int(zuora_before.get(k, 0)) for k in zuora_after},
        "sync_invocations": len(sizes),
        "batch_size_p50": percentile(sizes, 50),
        "batch_size_p90": percentile(sizes, 90),
        "pauses": dict(pauses.by_reason),
        "waited_s": round(pauses.waited_s, 1),
        "deepest_queue_seen": pauses.deepest_queue,
        "max_queue_backlog": MAX_BACKLOG,
        "wait_seconds": WAIT_SECONDS,
        "zuora_page_size": ZUORA_PAGE_SIZE,
    }
    phase = {"backfill": result, "live_during_backfill": live.summary()}
    progress(f"backfill: {json.dumps(phase)}")
    return phase


def _reconcile(stack: LocalDeployment, records: int) -> dict[str, Any]:
    assert stack.standin is not None  # noqa: S101
    sf_before = int(stack.standin.stats()["api_calls"])
    started = time.monotonic()
    runs = []
    while True:
        result = stack.run_reconcile_now()
        runs.append(result)
        if result["finished"] >= result["objects"] or len(runs) >= 10:
            break
    read_for = time.monotonic() - started
    stack.wait_until_drained(timeout=600)
    calls = int(stack.standin.stats()["api_calls"]) - sf_before
    read = sum(r["read"] for r in runs)
    return {
        "runs": len(runs),
        "read": read,
        "queued": sum(r["queued"] for r in runs),
        "malformed": sum(r["malformed"] for r in runs),
        "salesforce_api_calls": calls,
        "seconds": round(read_for, 1),
        "records_read_per_second": round(read / read_for, 1) if read_for else None,
        "expected_read": records,
    }


def bench_backfill(*, quick: bool, workdir: Path) -> dict[str, Any]:
    from nrtsync_local.stack import LocalDeployment  # noqa: PLC0415

    records = QUICK_RECORDS if quick else RECORDS
    baseline_seconds = 20.0 if quick else BASELINE_SECONDS
    state_file = workdir / "stack.json"
    progress(f"backfill: starting the local stack (Salesforce stand-in at {SALESFORCE_LATENCY_MS} ms a call)")
    with (
        quiet_handlers(),
        LocalDeployment(
            state_file=state_file,
            salesforce_latency_ms=SALESFORCE_LATENCY_MS,
            with_metrics=False,
            probe_interval_seconds=0,
            reconcile_every_seconds="off",
            stack_name="bench-backfill",
        ) as stack,
    ):
        assert stack.standin is not None  # noqa: S101
        workload = Workload()
        seed_parents(stack.standin, workload)
        warm = LiveCallouts(stack, workload.parents, first=0, rate=5.0)
        with warm.running():
            time.sleep(1.0)  # builds the functions' services (a cold start each container pays once)
        stack.wait_until_drained(timeout=60)
        progress(f"backfill: live callouts alone, {LIVE_RATE:g}/s for {baseline_seconds:g} s")
        alone = LiveCallouts(stack, workload.parents, first=1_000)
        with alone.running():
            time.sleep(baseline_seconds)
        stack.wait_until_drained(timeout=120)
        result = _backfill(stack, state_file, records, workload.parents)
        result["live_alone"] = alone.summary()
        progress(f"backfill: live alone {json.dumps(result['live_alone'])}")
        progress("backfill: reconcile sweep over the org now in step")
        result["reconcile"] = _reconcile(stack, records)
        progress(f"backfill: reconcile {json.dumps(result['reconcile'])}")
    result |= {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "salesforce_latency_ms": SALESFORCE_LATENCY_MS,
        "target_api_calls_per_record": round(TARGET_CALLS_PER_RECORD, 6),
    }
    result["targets"] = targets(result)
    return result
