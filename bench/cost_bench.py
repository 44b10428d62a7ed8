"""``python -m bench.run --only cost``: what a change costs on the AWS bill, and what the batching window costs in
Salesforce API calls and latency, counted on the local stack.

Two measurements:

1. **Usage per change.** Callouts through the local stack's HTTP front (API Gateway stand-in, authorizer,
   ingest, moto's SQS, the SQS poller with the template's batching window, the sync function on moto's
   DynamoDB, the Salesforce stand-in at 150 ms a call), in two phases: a slow one (batches of one or two) and a
   fast one (batches of tens). Every AWS request the functions and the poller make is counted by botocore hooks
   (``bench.cost_counter``), DynamoDB units from the items' sizes, log bytes from the Powertools logger's and the
   EMF lines, each handler's wall time. The two phases separate what a sync invocation costs from what each
   record in it costs (two equations, two unknowns). Then the metrics function, the breaker's probe and the
   reconcile function run a few times each, as their schedules would, and are counted per run.
2. **Salesforce API budget.** The same stream at one rate with several ``BatchingWindowSeconds``: batch sizes,
   Salesforce API calls (the stand-in's count) and end-to-end P50/P90 per window. They give the planner's
   constants (``nrtsync_cli.plan``) and check its batch model.

``bench.cost_model`` turns the usage into dollars at the three profiles with the price table bench/prices.json.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from bench.common import progress, quiet_handlers
from bench.cost_counter import (
    ESM,
    AwsCallCounter,
    CallerTracker,
    InvocationTimer,
    LogSink,
    moto_stored_item,
)
from bench.cost_model import PROFILES, Prices, UnitUsage, costs_at_profiles
from bench.e2e_bench import _history
from bench.workload import MIX, Workload, live_callout, seed_parents
from nrtsync.domain.latency import percentile
from nrtsync.observability.names import ALL_OBJECT_TYPES, DISTRIBUTION_METRIC_NAMES, OBJECT_TYPE_DIMENSION
from nrtsync_cli.plan import MAX_BATCH, batch_size
from nrtsync_local.aws import REGION
from nrtsync_local.callouts import CalloutSender, send_paced
from nrtsync_local.stack import LocalDeployment
from nrtsync_local.stack.schedule import schedule_enabled, schedule_expression, schedule_seconds
from nrtsync_local.stack.spec import INGEST, METRICS, RECONCILE, SYNC, authorizer_function
from nrtsync_local.template import function_properties, load_template, parameter_defaults

SENDERS = 8
SALESFORCE_LATENCY_MS = 150
SCHEDULED_RUNS = 3


class EmfSink(LogSink):
    """Counts the EMF lines' bytes, and remembers each metric (name and dimension values) they publish."""

    def __init__(self, tracker: CallerTracker) -> None:
        super().__init__(tracker)
        self.metrics: set[tuple[str, tuple[tuple[str, str], ...]]] = set()

    def write(self, text: str) -> int:
        for line in text.splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                document = json.loads(line)
                for directive in document["_aws"]["CloudWatchMetrics"]:
                    for dimension_set in directive["Dimensions"]:
                        dims = tuple(sorted((d, str(document[d])) for d in dimension_set))
                        for metric in directive["Metrics"]:
                            self.metrics.add((metric["Name"], dims))
        return super().write(text)


class Measurement:
    """The counters, the sinks and the handler timing, installed around one local stack."""

    def __init__(self) -> None:
        self.tracker = CallerTracker()
        self.counter = AwsCallCounter(self.tracker, stored_item=moto_stored_item(REGION))
        self.timer = InvocationTimer(self.tracker)
        self.logs = LogSink(self.tracker)
        self.emf = EmfSink(self.tracker)

    @contextlib.contextmanager
    def around(self, stack: LocalDeployment) -> Iterator[None]:
        """Handlers timed, their log lines and EMF lines counted (and dropped), from here to the end."""
        from nrtsync.observability import logger  # noqa: PLC0415 - after the stack set the environment

        handlers = stack._handlers  # the bench wraps the local stack's invocations (private on purpose)
        original = handlers.invoke
        timer = self.timer

        def invoke(function: str, handler: Any, event: dict[str, Any], context: Any) -> dict[str, Any]:
            result: dict[str, Any] = original(function, timer.timed(function, handler), event, context)
            return result

        handlers.invoke = invoke  # type: ignore[method-assign]
        stream_handler: Any = logger.registered_handler
        previous = stream_handler.setStream(self.logs)
        try:
            with contextlib.redirect_stdout(self.emf):
                yield
        finally:
            stream_handler.setStream(previous)
            handlers.invoke = original  # type: ignore[method-assign]

    def snapshot(self) -> dict[str, Any]:
        """Everything counted since the last reset, then reset."""
        invocations = list(self.timer.invocations)
        data = {
            "aws": self.counter.totals(),
            "log_bytes": dict(self.logs.bytes),
            "log_lines": dict(self.logs.lines),
            "emf_bytes": dict(self.emf.bytes),
            "emf_lines": dict(self.emf.lines),
            "invocations": invocations,
        }
        self.counter.reset()
        self.timer.reset()
        self.logs.reset()
        self.emf.reset()
        return data


def _send_stream(stack: LocalDeployment, workload: Workload, *, rate: float, seconds: float, first: int) -> list[int]:
    """Callouts at ``rate`` for ``seconds`` (each a distinct record, the batch mix); returns the HTTP statuses."""
    callouts = CalloutSender(stack.callout_url, stack.callout_auth)
    try:
        sent = send_paced(
            callouts.post,
            lambda n: live_callout(first + n, workload.parents),
            rate=rate,
            count=max(1, int(rate * seconds)),
            workers=SENDERS,
        )
    finally:
        callouts.close()
    return [s.status for s in sent]


# --- usage per change ---------------------------------------------------------------------------------------------


def _memory_gb(template: Mapping[str, Any], function: str) -> float:
    return float(function_properties(template, function).get("MemorySize", 128)) / 1024


def _access_log_bytes(template: Mapping[str, Any]) -> int:
    """One access log line of the template's format, with typical values in place of the $context variables."""
    api = template["Resources"]["CalloutApi"]["Properties"]
    line = str(api["AccessLogSetting"]["Format"])
    typical = {
        "$context.requestId": "8f3c2d6e-0b1a-4c55-9d7e-2f4a6b8c0d1e",
        "$context.identity.sourceIp": "52.8.224.117",
        "$context.requestTime": "01/Dec/2026:23:27:00 +0000",
        "$context.httpMethod": "POST",
        "$context.resourcePath": "/callouts",
        "$context.status": "200",
        "$context.protocol": "HTTP/1.1",
        "$context.responseLength": "17",
        "$context.integrationLatency": "23",
        "$context.responseLatency": "41",
    }
    for variable, value in sorted(typical.items(), key=lambda kv: -len(kv[0])):
        line = line.replace(variable, value)
    return len(line.encode()) + 1


def _fit(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float]:
    """(per invocation, per record) from two phases' (invocations, records, total); never negative."""
    (n1, r1, x1), (n2, r2, x2) = a, b
    det = n1 * r2 - n2 * r1
    if abs(det) > 1e-9:
        fixed, per_record = (x1 * r2 - x2 * r1) / det, (n1 * x2 - n2 * x1) / det
        if fixed >= 0 and per_record >= 0:
            return fixed, per_record
    records = r1 + r2
    return 0.0, (x1 + x2) / records if records else 0.0


def _linear(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``seconds = fixed + per_record * records`` over the sync invocations."""
    if len(points) < 2 or len({r for r, _ in points}) < 2:
        mean = statistics.fmean(s for _, s in points) if points else 0.0
        return mean, 0.0
    slope, intercept = statistics.linear_regression([float(r) for r, _ in points], [s for _, s in points])
    if intercept < 0:
        return 0.0, statistics.fmean(s / r for r, s in points if r)
    return intercept, max(0.0, slope)


def _sync_side(phase: Mapping[str, Any], sync_gb: float, platform: float, overhead: float) -> dict[str, float]:
    """One phase's totals for the sync function and the event source together."""
    aws = phase["aws"]
    sync, esm = aws.get(SYNC, {}), aws.get(ESM, {})
    sqs = sum(n for op, n in sync.get("calls", {}).items() if op.startswith("sqs."))
    # The event source's receives that carried messages, and its deletes; its empty long polls are modelled
    # apart (the local poller's 1-s polls are not Lambda's 20-s ones).
    esm_calls = esm.get("calls", {})
    receives = esm_calls.get("sqs.ReceiveMessage", 0) - esm.get("sqs_empty_receives", 0)
    deletes = sum(n for op, n in esm_calls.items() if op.startswith("sqs.Delete"))
    invocations = [i for i in phase["invocations"] if i.function == SYNC and i.records]
    lines = phase["log_lines"].get(SYNC, 0) + phase["emf_lines"].get(SYNC, 0)
    return {
        "invocations": len(invocations),
        "records": sum(i.records for i in invocations),
        "dynamodb_wru": sync.get("dynamodb_wru", 0.0),
        "dynamodb_rru": sync.get("dynamodb_rru", 0.0),
        "sqs_requests": float(sqs + receives + deletes),
        "secrets_calls": float(sync.get("calls", {}).get("secretsmanager.GetSecretValue", 0)),
        "log_bytes": phase["log_bytes"].get(SYNC, 0)
        + phase["emf_bytes"].get(SYNC, 0)
        + lines * overhead
        + len(invocations) * platform,
        "lambda_gb_seconds": sum(i.seconds for i in invocations) * sync_gb,
    }


def _per_change(
    phases: list[Mapping[str, Any]], changes: int, template: Mapping[str, Any], prices: Prices
) -> dict[str, float]:
    """What every change costs whatever the batching: the front, the authorizer, the ingest function."""
    platform = prices.assumptions["lambda_platform_log_bytes_per_invocation"]
    overhead = prices.assumptions["log_event_overhead_bytes"]
    front = [INGEST, *([a] if (a := authorizer_function(template)) else [])]
    totals: dict[str, float] = {"apigateway_requests": float(changes)}
    for phase in phases:
        for function in front:
            aws = phase["aws"].get(function, {})
            calls = aws.get("calls", {})
            runs = [i for i in phase["invocations"] if i.function == function]
            lines = phase["log_lines"].get(function, 0) + phase["emf_lines"].get(function, 0)
            add = {
                "lambda_requests": len(runs),
                "lambda_gb_seconds": sum(i.seconds for i in runs) * _memory_gb(template, function),
                "sqs_requests": sum(n for op, n in calls.items() if op.startswith("sqs.")),
                "secrets_calls": calls.get("secretsmanager.GetSecretValue", 0),
                "dynamodb_wru": aws.get("dynamodb_wru", 0.0),
                "dynamodb_rru": aws.get("dynamodb_rru", 0.0),
                "log_bytes": phase["log_bytes"].get(function, 0)
                + phase["emf_bytes"].get(function, 0)
                + lines * overhead
                + len(runs) * platform,
            }
            for key, value in add.items():
                totals[key] = totals.get(key, 0.0) + float(value)
    per_change = {k: v / changes for k, v in totals.items() if k != "apigateway_requests"}
    per_change["apigateway_requests"] = 1.0
    per_change["log_bytes"] = per_change.get("log_bytes", 0.0) + _access_log_bytes(template) + overhead
    return per_change


def _scheduled(snapshot: Mapping[str, Any], function: str, runs: int, gb: float, prices: Prices) -> dict[str, float]:
    aws = snapshot["aws"].get(function, {})
    calls = aws.get("calls", {})
    invocations = [i for i in snapshot["invocations"] if i.function == function]
    lines = snapshot["log_lines"].get(function, 0) + snapshot["emf_lines"].get(function, 0)
    log_bytes = (
        snapshot["log_bytes"].get(function, 0)
        + snapshot["emf_bytes"].get(function, 0)
        + lines * prices.assumptions["log_event_overhead_bytes"]
        + len(invocations) * prices.assumptions["lambda_platform_log_bytes_per_invocation"]
    )
    return {
        "lambda_requests": 1.0,
        "lambda_gb_seconds": sum(i.seconds for i in invocations) * gb / runs,
        "dynamodb_wru": aws.get("dynamodb_wru", 0.0) / runs,
        "dynamodb_rru": aws.get("dynamodb_rru", 0.0) / runs,
        "put_metric_data_requests": calls.get("cloudwatch.PutMetricData", 0) / runs,
        "sqs_requests": sum(n for op, n in calls.items() if op.startswith("sqs.")) / runs,
        "secrets_calls": calls.get("secretsmanager.GetSecretValue", 0) / runs,
        "log_bytes": log_bytes / runs,
    }


def _fixed(template: Mapping[str, Any], custom_metrics: int) -> dict[str, float]:
    resources = template["Resources"].values()
    alarm_metrics = 0
    for resource in resources:
        if resource.get("Type") == "AWS::CloudWatch::Alarm":
            metrics = resource.get("Properties", {}).get("Metrics")
            alarm_metrics += sum(1 for m in metrics if "MetricStat" in m) if metrics else 1
    return {
        "custom_metrics": float(custom_metrics),
        "alarm_metrics": float(alarm_metrics),
        "dashboards": float(sum(1 for r in resources if r.get("Type") == "AWS::CloudWatch::Dashboard")),
        "secrets": float(sum(1 for r in resources if r.get("Type") == "AWS::SecretsManager::Secret")),
    }


def _invocation_summary(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    by_function: dict[str, list[Any]] = {}
    for i in snapshot["invocations"]:
        by_function.setdefault(i.function, []).append(i)
    return {
        f: {
            "invocations": len(runs),
            "mean_ms": round(statistics.fmean(i.seconds for i in runs) * 1000, 1),
            "records": sum(i.records for i in runs),
        }
        for f, runs in sorted(by_function.items())
    }


def _run_local(measurement: Measurement, *, quick: bool, window: float) -> dict[str, Any]:
    """The two phases, then the scheduled functions, on one local stack; each part's counts apart."""
    phases_spec = [("slow", 1.0, 12.0 if quick else 24.0), ("fast", 15.0, 10.0 if quick else 30.0)]
    phases: list[dict[str, Any]] = []
    measurement.counter.install()  # before the stack builds its clients, so each gets the hooks
    try:
        stack = LocalDeployment(
            salesforce_latency_ms=SALESFORCE_LATENCY_MS,
            with_metrics=True,
            metrics_interval_seconds=86_400,  # run by hand below, counted per run
            probe_interval_seconds=0,
            stack_name="bench-cost",
        )
        with stack, measurement.around(stack):
            assert stack.standin is not None  # noqa: S101 - no real org here
            workload = Workload()
            seed_parents(stack.standin, workload)
            # The first callout and the first sync invocation build their services (secrets, clients): a cold
            # start each container pays once; left out of the per-change figures.
            sent = len(_send_stream(stack, workload, rate=1.0, seconds=1.0, first=0))
            with measurement.counter.paused():
                stack.wait_until_drained(timeout=60)
            measurement.snapshot()
            for name, rate, seconds in phases_spec:
                progress(f"cost: {name} phase, {rate:g} callouts/s for {seconds:g} s (batching window {window:g} s)")
                statuses = _send_stream(stack, workload, rate=rate, seconds=seconds, first=sent)
                sent += len(statuses)
                with measurement.counter.paused():
                    stack.wait_until_drained(timeout=180)
                snapshot = measurement.snapshot()
                snapshot |= {"name": name, "rate": rate, "changes": len(statuses)}
                snapshot["statuses"] = {str(s): statuses.count(s) for s in sorted(set(statuses))}
                phases.append(snapshot)
            progress(f"cost: the metrics function, the breaker's probe and reconciliation, {SCHEDULED_RUNS} runs each")
            for _ in range(SCHEDULED_RUNS):
                stack.run_metrics_now()
            metrics_runs = measurement.snapshot()
            for _ in range(SCHEDULED_RUNS):
                stack.run_probe_now()
            probe_runs = measurement.snapshot()
            # Reconciliation over the tenant the local Zuora stand-in holds (none of these callouts' records: a
            # sweep of quiet objects, what most runs are); Zuora's calls are not on the AWS bill.
            for _ in range(SCHEDULED_RUNS):
                stack.run_reconcile_now()
            reconcile_runs = measurement.snapshot()
            with measurement.counter.paused():
                e2e, _, written = _history(stack)
    finally:
        measurement.counter.uninstall()
    return {
        "phases": phases,
        "metrics_runs": metrics_runs,
        "probe_runs": probe_runs,
        "reconcile_runs": reconcile_runs,
        "e2e": e2e,
        "written": written,
    }


def measure_usage(*, quick: bool, prices: Prices) -> dict[str, Any]:
    """Usage per change, per sync invocation and record, per scheduled run, and the fixed items."""
    template = load_template()
    window = float(parameter_defaults(template)["BatchingWindowSeconds"])
    measurement = Measurement()
    run = _run_local(measurement, quick=quick, window=window)
    phases, metrics_runs, probe_runs = run["phases"], run["metrics_runs"], run["probe_runs"]
    reconcile_runs = run["reconcile_runs"]
    e2e, written = run["e2e"], run["written"]

    platform = prices.assumptions["lambda_platform_log_bytes_per_invocation"]
    overhead = prices.assumptions["log_event_overhead_bytes"]
    sync_gb = _memory_gb(template, SYNC)
    sides = [_sync_side(p, sync_gb, platform, overhead) for p in phases]
    per_invocation: dict[str, float] = {"lambda_requests": 1.0}
    per_record: dict[str, float] = {}
    for key in ("dynamodb_wru", "dynamodb_rru", "sqs_requests", "secrets_calls", "log_bytes"):
        fixed, variable = _fit(*[(s["invocations"], s["records"], s[key]) for s in sides[:2]])
        per_invocation[key], per_record[key] = fixed, variable
    points = [(i.records, i.seconds) for p in phases for i in p["invocations"] if i.function == SYNC and i.records]
    seconds_fixed, seconds_per_record = _linear(points)
    per_invocation["lambda_gb_seconds"] = seconds_fixed * sync_gb
    per_record["lambda_gb_seconds"] = seconds_per_record * sync_gb

    changes = sum(p["changes"] for p in phases)
    custom = measurement.emf.metrics | measurement.counter.metric_streams
    # The raw per-minute distributions are published once a minute has settled (90 s), which a run this short
    # may not see: counted for each object type the run synced, as every busy minute publishes them.
    synced_types = [object_type for object_type, _ in MIX] + [ALL_OBJECT_TYPES]
    custom |= {(name, ((OBJECT_TYPE_DIMENSION, t),)) for name in DISTRIBUTION_METRIC_NAMES for t in synced_types}
    schedules = {
        METRICS: 3600 / (schedule_seconds(schedule_expression(template, METRICS)) or 60),
        SYNC: 3600 / (schedule_seconds(schedule_expression(template, SYNC)) or 60),
        RECONCILE: 3600 / (schedule_seconds(schedule_expression(template, RECONCILE)) or 60)
        if schedule_enabled(template, RECONCILE)
        else 0.0,
    }
    usage = {
        "per_change": _per_change(phases, changes, template, prices),
        "per_sync_invocation": per_invocation,
        "per_sync_record": per_record,
        "per_scheduled_run": {
            METRICS: _scheduled(metrics_runs, METRICS, SCHEDULED_RUNS, _memory_gb(template, METRICS), prices),
            f"{SYNC} (breaker probe)": _scheduled(probe_runs, SYNC, SCHEDULED_RUNS, sync_gb, prices),
            RECONCILE: _scheduled(reconcile_runs, RECONCILE, SCHEDULED_RUNS, _memory_gb(template, RECONCILE), prices),
        },
        "scheduled_runs_per_hour": {
            METRICS: schedules[METRICS],
            f"{SYNC} (breaker probe)": schedules[SYNC],
            RECONCILE: schedules[RECONCILE],
        },
        "fixed_per_month": _fixed(template, len(custom)),
    }
    return {
        "batching_window_seconds": window,
        "salesforce_latency_ms": SALESFORCE_LATENCY_MS,
        "changes": changes,
        "written": written,
        "e2e_p50_s": _s(percentile(e2e, 50)),
        "e2e_p90_s": _s(percentile(e2e, 90)),
        "phases": [
            {
                "name": p["name"],
                "rate_per_second": p["rate"],
                "changes": p["changes"],
                "http_statuses": p["statuses"],
                "sync_invocations": s["invocations"],
                "mean_batch_size": round(s["records"] / s["invocations"], 2) if s["invocations"] else None,
                "modelled_batch_size_one_poller": round(batch_size(p["rate"], window, 1), 2),
                "functions": _invocation_summary(p),
                "aws": p["aws"],
                "log_bytes": p["log_bytes"],
                "emf_bytes": p["emf_bytes"],
            }
            for p, s in zip(phases, sides, strict=True)
        ],
        "sync_seconds_fixed": round(seconds_fixed, 4),
        "sync_seconds_per_record": round(seconds_per_record, 5),
        "scheduled": {
            "metrics_runs": metrics_runs["aws"],
            "probe_runs": probe_runs["aws"],
            "reconcile_runs": reconcile_runs["aws"],
        },
        "custom_metrics": sorted(f"{n} {dict(d)}" for n, d in custom),
        "usage": usage,
    }


def _s(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


# --- Salesforce API budget ----------------------------------------------------------------------------------------


def measure_windows(*, quick: bool, rate: float = 5.0) -> list[dict[str, Any]]:
    """At ``rate`` callouts/s, for each batching window: batch sizes, Salesforce API calls, P50/P90."""
    windows = (1, 5) if quick else (1, 2, 5, 10)
    seconds = 12.0 if quick else 30.0
    rows = []
    for window in windows:
        progress(f"budget: window {window} s, {rate:g} callouts/s for {seconds:g} s")
        with (
            quiet_handlers(),
            LocalDeployment(
                sync_batch_window_seconds=float(window),
                salesforce_latency_ms=SALESFORCE_LATENCY_MS,
                with_metrics=False,
                probe_interval_seconds=0,
                stack_name=f"bench-budget-{window}",
            ) as stack,
        ):
            assert stack.standin is not None  # noqa: S101
            workload = Workload()
            seed_parents(stack.standin, workload)
            before = stack.standin.stats()["api_calls"]
            statuses = _send_stream(stack, workload, rate=rate, seconds=seconds, first=0)
            stack.wait_until_drained(timeout=180)
            calls = stack.standin.stats()["api_calls"] - before
            e2e, sync_ms, written = _history(stack)
            sizes = list(stack.poll_stats.batch_sizes)
        rows.append(
            {
                "window_seconds": window,
                "rate_per_second": rate,
                "changes": len(statuses),
                "written": written,
                "salesforce_api_calls": calls,
                "api_calls_per_change": round(calls / len(statuses), 4),
                "mean_batch_size": round(statistics.fmean(sizes), 2) if sizes else None,
                "modelled_batch_size_one_poller": round(batch_size(rate, window, 1), 2),
                "e2e_p50_s": _s(percentile(e2e, 50)),
                "e2e_p90_s": _s(percentile(e2e, 90)),
                "sync_ms_p50": percentile(sync_ms, 50),
            }
        )
    return rows


def planner_constants(rows: list[dict[str, Any]], usage: Mapping[str, Any]) -> dict[str, Any]:
    """The planner's ``Measured``: the part of P50/P90 the window does not explain, and the sync's duration."""
    from nrtsync_cli.plan import Measured, latency_seconds  # noqa: PLC0415

    zero = Measured(0.0, 0.0, 0.0, 0.0, "")
    base50, base90 = [], []
    for row in rows:
        if row["e2e_p50_s"] is None:
            continue
        wait50, wait90 = latency_seconds(row["rate_per_second"], row["window_seconds"], 1, zero)
        base50.append(row["e2e_p50_s"] - wait50)
        base90.append(row["e2e_p90_s"] - wait90)
    return {
        "base_p50_s": round(max(0.0, statistics.median(base50)), 2) if base50 else None,
        "base_p90_s": round(max(0.0, statistics.median(base90)), 2) if base90 else None,
        "sync_fixed_s": round(usage["sync_seconds_fixed"], 3),
        "sync_per_record_s": round(usage["sync_seconds_per_record"], 4),
    }


def bench_cost(*, quick: bool) -> dict[str, Any]:
    prices = Prices.load()
    template = load_template()
    defaults = parameter_defaults(template)
    window, concurrency = float(defaults["BatchingWindowSeconds"]), int(defaults["SyncMaxConcurrency"])
    usage = measure_usage(quick=quick, prices=prices)
    rows = measure_windows(quick=quick)
    unit = UnitUsage.from_dict(usage["usage"])
    profiles = costs_at_profiles(unit, prices, window_seconds=window, concurrency=concurrency)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "prices": {"as_of": prices.as_of, "region": prices.region, "file": "bench/prices.json"},
        "template_defaults": {"BatchingWindowSeconds": window, "SyncMaxConcurrency": concurrency},
        "profiles": [p.as_dict() | {"label": spec.label} for p, spec in zip(profiles, PROFILES, strict=True)],
        "measurement": usage,
        "salesforce_budget": rows,
        "planner": planner_constants(rows, usage),
        "max_batch": MAX_BATCH,
    }


if __name__ == "__main__":
    json.dump(bench_cost(quick="--quick" in sys.argv), sys.stdout, indent=2, default=str)
